"""Resume an interrupted upload with paramiko, as WinSCP and scripts do:
stat the remote file for the length it has, reopen it for writing without
truncating ("r+"), seek there and write the rest, pipelined.

usage: paramiko_resume.py HOST PORT USER KEY LOCAL REMOTE
Prints the offset it resumed from; exits non-zero with paramiko's error.
"""

import sys

import paramiko


def main():
    host, port, user, key, local, remote = sys.argv[1:7]
    transport = paramiko.Transport((host, int(port)))
    # The test's server is on 127.0.0.1 with a fresh host key: not checked.
    transport.connect(username=user, pkey=paramiko.Ed25519Key.from_private_key_file(key))
    sftp = transport.open_sftp_client()
    offset = sftp.stat(remote).st_size
    print("resuming from", offset, flush=True)
    with open(local, "rb") as src, sftp.open(remote, "r+") as dst:
        dst.set_pipelined(True)
        src.seek(offset)
        dst.seek(offset)
        while True:
            chunk = src.read(32768)
            if not chunk:
                break
            dst.write(chunk)
    sftp.close()
    transport.close()


if __name__ == "__main__":
    main()
