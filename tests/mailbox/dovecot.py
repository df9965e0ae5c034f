"""A real IMAP server for the tests: Debian's dovecot, on loopback, with a temporary config, users and maildirs.

Started in the foreground (`dovecot -F -c CONF`) as a subprocess and stopped with it; TLS with a throwaway
self-signed certificate for 127.0.0.1, so the tests connect exactly as production does (IMAPS, or STARTTLS).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.mail_server import self_signed
from tests.ports import free_port

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
USER = "nianbao@county.example"
PASSWORD = "imap-test-password"


@dataclass
class ImapServer:
    folder: Path
    imap_port: int  # plain, STARTTLS offered
    imaps_port: int  # TLS from the first byte
    ca_file: Path
    process: subprocess.Popen[bytes]

    def client(self) -> imaplib.IMAP4_SSL:
        """A logged-in client, for delivering test messages (IMAP APPEND) and looking at flags."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        conn = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=context, timeout=10)
        conn.login(USER, PASSWORD)
        return conn

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        conn = self.client()
        try:
            typ, data = conn.append(folder, "", imaplib.Time2Internaldate(time.time()), raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_dovecot() -> ImapServer:
    assert DOVECOT is not None
    # not under pytest's tmp_path: dovecot's unprivileged login processes must be able to reach the sockets
    folder = Path(tempfile.mkdtemp(prefix="nianbao-dovecot-"))
    folder.chmod(0o755)
    cert, key = _self_signed(folder)
    (folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    if os.geteuid() == 0:
        login_user, internal_user, mail_user = "dovenull", "dovecot", "dovecot"
    else:
        login_user = internal_user = mail_user = pwd.getpwuid(os.geteuid()).pw_name
    mail_dir = folder / "mail"
    mail_dir.mkdir()
    if os.geteuid() == 0:
        entry = pwd.getpwnam(mail_user)
        os.chown(mail_dir, entry.pw_uid, entry.pw_gid)
    imap_port = free_port()
    imaps_port = free_port(taken=frozenset({imap_port}))
    conf = folder / "dovecot.conf"
    conf.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
first_valid_gid = 1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{mail_dir}/%n
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_user} home={mail_dir}/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Processed {{
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = ImapServer(folder, imap_port, imaps_port, cert, process)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"dovecot exited with {process.returncode}: {output}\n{server.log()}")
        try:
            server.client().logout()
            return server
        except (OSError, imaplib.IMAP4.error):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"dovecot did not come up: {server.log()}") from None
            time.sleep(0.1)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = self_signed(folder)  # the SMTP tests' throwaway certificate for 127.0.0.1
    key.chmod(0o600)  # dovecot refuses a key others may read
    return cert, key
