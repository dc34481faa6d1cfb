"""Upload to an SFTP server with paramiko the way WinSCP does with its
default transfer settings: each file is checked for at its name, written to
NAME.filepart, given its modification time with SETSTAT, then renamed to
NAME.

usage: winscp_upload.py HOST PORT USER KEY tree LOCAL_DIR MTIME
       winscp_upload.py HOST PORT USER KEY gap LOCAL_FILE REMOTE
       winscp_upload.py HOST PORT USER KEY cut|resume LOCAL_FILE REMOTE

tree uploads every file below LOCAL_DIR so, each with the time MTIME (Unix
seconds). gap uploads the first half of LOCAL_FILE to REMOTE.filepart,
reopens it and writes the rest a quarter further on, leaving a gap, and
then renames it: the rename must be refused. cut uploads the first half of
LOCAL_FILE to REMOTE.filepart and drops the connection with the file open;
resume then goes on with it as WinSCP does (the length of the .filepart,
reopen, seek there, write the rest), sets its time and renames it to
REMOTE.
Exits non-zero, with paramiko's error, when anything fails.
"""

import errno
import os
import posixpath
import sys

import paramiko

CHUNK = 32 << 10  # WinSCP's and paramiko's write size


def main():
    host, port, user, key, mode = sys.argv[1:6]
    transport, sftp = connect(host, port, user, key)
    if mode == "tree":
        tree(sftp, sys.argv[6], int(sys.argv[7]))
    elif mode == "gap":
        gap(sftp, sys.argv[6], sys.argv[7])
    elif mode == "cut":
        still_open = cut(sftp, sys.argv[6], sys.argv[7])
        transport.close()  # the file is still open: the upload is cut off
        del still_open  # paramiko closes a file it collects: not before the cut
        return
    elif mode == "resume":
        resume(sftp, sys.argv[6], sys.argv[7])
    else:
        sys.exit("unknown mode " + mode)
    sftp.close()
    transport.close()


def connect(host, port, user, key):
    transport = paramiko.Transport((host, int(port)))
    # The test's server is on 127.0.0.1 with a fresh host key: not checked.
    transport.connect(username=user, pkey=paramiko.Ed25519Key.from_private_key_file(key))
    print("cipher", transport.remote_cipher, "mac", transport.remote_mac, flush=True)
    return transport, transport.open_sftp_client()


def tree(sftp, local, mtime):
    n = 0
    for root, subdirs, names in os.walk(local):
        subdirs.sort()
        rel = os.path.relpath(root, local)
        remote = "/" if rel == "." else "/" + rel.replace(os.sep, "/")
        if remote != "/":
            sftp.mkdir(remote)  # os.walk lists parents first
        for name in sorted(names):
            upload(sftp, os.path.join(root, name), posixpath.join(remote, name), mtime)
            n += 1
    print("uploaded", n, "files")


def upload(sftp, src, dst, mtime):
    # WinSCP looks for the target first, to ask before overwriting it.
    try:
        sftp.stat(dst)
        sys.exit(dst + " exists before its upload")
    except IOError as e:
        if e.errno != errno.ENOENT:
            raise
    part = dst + ".filepart"
    with open(src, "rb") as f, sftp.open(part, "wb") as out:
        out.set_pipelined(True)
        while chunk := f.read(CHUNK):
            out.write(chunk)
    sftp.utime(part, (mtime, mtime))  # SETSTAT on the closed .filepart
    sftp.rename(part, dst)


def gap(sftp, src, dst):
    with open(src, "rb") as f:
        data = f.read()
    half, part = len(data) // 2, dst + ".filepart"
    with sftp.open(part, "wb") as out:
        out.set_pipelined(True)
        out.write(data[:half])
    # Reopen, as WinSCP's resume does, but go on past the end.
    skip = half + len(data) // 4
    out = sftp.open(part, "r+b")
    out.seek(skip)
    try:
        out.write(data[skip:])
        print("the write after the gap was accepted (held ahead of the stream)")
    except IOError as e:
        print("the write after the gap was refused:", e)
    out.close()  # paramiko ignores a refused close
    try:
        sftp.rename(part, dst)
    except IOError as e:
        print("the rename was refused:", e)
        return
    sys.exit("the rename of " + part + " to " + dst + " succeeded after a gap")


def cut(sftp, src, dst):
    with open(src, "rb") as f:
        data = f.read()
    out = sftp.open(dst + ".filepart", "wb")
    # Not pipelined: every write is answered, so the server has it all.
    for i in range(0, len(data) // 2, CHUNK):
        out.write(data[i:min(i + CHUNK, len(data) // 2)])
    print("cut off after", len(data) // 2, "bytes", flush=True)
    return out


def resume(sftp, src, dst):
    part = dst + ".filepart"
    offset = sftp.stat(part).st_size
    print("resuming", part, "from", offset, flush=True)
    with open(src, "rb") as f, sftp.open(part, "r+b") as out:
        out.set_pipelined(True)
        f.seek(offset)
        out.seek(offset)
        while chunk := f.read(CHUNK):
            out.write(chunk)
    mtime = int(os.stat(src).st_mtime)
    sftp.utime(part, (mtime, mtime))
    sftp.rename(part, dst)


if __name__ == "__main__":
    main()
