"""The secrets that services read from files: MLflow's auth config and the Airflow UI's password.

MLflow's basic-auth app reads its permission database's URL (which carries PostgreSQL's password)
only from its config file, and Airflow's simple auth manager reads its users' passwords from a JSON
file, generating (and printing to its log) any that is missing. So both files are written by us,
before those services start, with mode 0600 in 0700 directories: Airflow then never generates or
prints a password, and no other local user can read either.

`make stack` writes them from its secrets (`write`). docker compose runs this module as the one-shot
`secrets-init` service (`main`): it first refuses to go on while any secret still holds the
`.env.example` placeholder (compose's `${VAR:?}` can only refuse an empty value), then writes the
same files into the volumes the MLflow and Airflow API server containers mount. Every other service
waits for it to complete, so compose starts nothing with a placeholder secret.
"""

from __future__ import annotations

import argparse
import configparser
import io
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

from ops.stack.accounts import ADMIN
from ops.stack.postgres import AUTH_DATABASE
from ops.stack.topology import ADMIN_USER, write_private

# Successful logins are cached this long in the MLflow worker: a check costs a deliberately slow password
# hash (0.3-0.7 s measured here), and every router worker polls the registry. Password changes and
# deleted users made through the API take effect at once (MLflow invalidates its cache), direct SQL after this.
AUTH_CACHE_TTL_S = 60
PLACEHOLDER = "change-me"  # how every secret of .env.example begins
MIN_SECRET_CHARS = 16


def auth_config(database_uri: str) -> str:
    """MLflow's auth config: nobody may do anything without a grant, users and grants in `database_uri`."""
    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": "NO_PERMISSIONS",
        # MLflow reads the file with '%' interpolation on: a literal '%' (URL-escaped passwords) is written '%%'.
        "database_uri": database_uri.replace("%", "%%"),
        "admin_username": ADMIN,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access": "false",
        "auth_cache_ttl_seconds": str(AUTH_CACHE_TTL_S),
    }
    text = io.StringIO()
    config.write(text)
    return "; Rendered by ticket-ab: MLflow's auth config. It holds a database password: mode 0600.\n" + text.getvalue()


def airflow_passwords(password: str) -> str:
    """The simple auth manager's password file: the UI user and its password."""
    return json.dumps({ADMIN_USER: password}) + "\n"


def database_uri(user: str, password: str, host: str, database: str = AUTH_DATABASE) -> str:
    """A SQLAlchemy URL of one database of the stack's PostgreSQL (user and password URL-escaped)."""
    return f"postgresql+psycopg2://{quote(user, safe='')}:{quote(password, safe='')}@{host}/{database}"


def write_files(auth_file: Path, passwords_file: Path, database: str, airflow_password: str) -> None:
    """Write both files, each 0600 in its own 0700 directory."""
    for path, text in ((auth_file, auth_config(database)), (passwords_file, airflow_passwords(airflow_password))):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        write_private(path, text)


def placeholders(env: dict[str, str], names: list[str]) -> list[str]:
    """Which of `names` are unset, still the `.env.example` placeholder, or too short to be a secret."""
    bad = []
    for name in names:
        value = env.get(name, "")
        if not value:
            bad.append(f"{name} is not set")
        elif value.lower().startswith(PLACEHOLDER):
            bad.append(f"{name} still holds the .env.example placeholder")
        elif len(value) < MIN_SECRET_CHARS:
            bad.append(f"{name} is shorter than {MIN_SECRET_CHARS} characters")
    return bad


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    """compose's `secrets-init`: refuse placeholder secrets (naming each), then write the secret files."""
    parser = argparse.ArgumentParser(prog="python -m ops.stack.secret_files", description=main.__doc__)
    parser.add_argument("--postgres", required=True, help="host:port of the stack's PostgreSQL")
    parser.add_argument("--auth-file", type=Path, required=True, help="MLflow's auth config to write")
    parser.add_argument("--passwords-file", type=Path, required=True, help="Airflow's password file to write")
    parser.add_argument("secrets", nargs="+", help="names of the variables that must hold real secrets")
    args = parser.parse_args(argv)
    env = dict(os.environ) if env is None else env
    bad = placeholders(env, args.secrets)
    if bad:
        print("error: refusing to start with placeholder secrets; set them in .env: " + "; ".join(bad),
              file=sys.stderr)
        return 2
    uri = database_uri(env.get("POSTGRES_USER") or "ticketab", env["POSTGRES_PASSWORD"], args.postgres)
    write_files(args.auth_file, args.passwords_file, uri, env["AIRFLOW_ADMIN_PASSWORD"])
    print(f"secrets checked ({len(args.secrets)}); wrote {args.auth_file} and {args.passwords_file} (mode 0600)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
