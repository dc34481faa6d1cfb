"""Upload a local tree to an SFTP server with paramiko, as a supplier's
batch job would: one connection, several SFTP sessions on it uploading at
once, each with paramiko's own put() (pipelined writes, then, with
CONFIRM "yes", a stat to confirm the size, put()'s default).

usage: paramiko_upload.py HOST PORT USER KEY LOCAL_DIR SESSIONS CONFIRM
Exits non-zero, with paramiko's error, when anything fails.
"""

import os
import posixpath
import queue
import sys
import threading

import paramiko


def main():
    host, port, user, key, local, sessions, confirm = sys.argv[1:8]
    transport = paramiko.Transport((host, int(port)))
    # The test's server is on 127.0.0.1 with a fresh host key: not checked.
    transport.connect(username=user, pkey=paramiko.Ed25519Key.from_private_key_file(key))
    print("cipher", transport.remote_cipher, "mac", transport.remote_mac, flush=True)

    files, dirs = [], []
    for root, subdirs, names in os.walk(local):
        rel = os.path.relpath(root, local)
        remote = "/" if rel == "." else "/" + rel.replace(os.sep, "/")
        dirs.extend(posixpath.join(remote, d) for d in sorted(subdirs))
        files.extend((os.path.join(root, n), posixpath.join(remote, n)) for n in sorted(names))

    sftp = transport.open_sftp_client()
    for d in dirs:  # os.walk lists parents first
        sftp.mkdir(d)
    sftp.close()

    work = queue.Queue()
    for f in files:
        work.put(f)
    errors = []

    def upload():
        client = transport.open_sftp_client()
        try:
            while True:
                try:
                    src, dst = work.get_nowait()
                except queue.Empty:
                    return
                client.put(src, dst, confirm=confirm == "yes")
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=upload) for _ in range(int(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    transport.close()
    if errors:
        for e in errors:
            print("upload failed:", repr(e), file=sys.stderr)
        sys.exit(1)
    print("uploaded", len(files), "files")


if __name__ == "__main__":
    main()
