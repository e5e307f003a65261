#!/usr/bin/python3
"""A slow disk for tests: a FUSE pass-through file system whose every fsync
and fdatasync of a file takes SECONDS longer than the disk under it.

    slowDisk.py BACKING MOUNTPOINT SECONDS

Everything else (reads, writes, creations, renames, directory syncs) passes
straight through. Runs in the foreground until it is stopped (SIGTERM or
SIGINT unmounts it); the test that starts it stops it by pid. Needs root,
/dev/fuse and Debian's python3-fusepy.
"""
import errno
import os
import sys
import time

from fusepy import FUSE, FuseOSError, Operations


class SlowSync(Operations):
    def __init__(self, backing, seconds):
        self.backing = os.path.realpath(backing)
        self.seconds = seconds

    def _path(self, path):
        return os.path.join(self.backing, path.lstrip('/'))

    def access(self, path, mode):
        if not os.access(self._path(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        return os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._path(path), uid, gid)

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        return {key: getattr(st, key) for key in ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime', 'st_nlink', 'st_size', 'st_uid')}

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(self._path(path))

    def readlink(self, path):
        return os.readlink(self._path(path))

    def mkdir(self, path, mode):
        return os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        return os.rmdir(self._path(path))

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        return {key: getattr(st, key) for key in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}

    def unlink(self, path):
        return os.unlink(self._path(path))

    def symlink(self, name, target):
        return os.symlink(target, self._path(name))

    def rename(self, old, new):
        return os.rename(self._path(old), self._path(new))

    def link(self, target, name):
        return os.link(self._path(name), self._path(target))

    def utimens(self, path, times=None):
        return os.utime(self._path(path), times)

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT, mode)

    def read(self, path, length, offset, fh):
        return os.pread(fh, length, offset)

    def write(self, path, buf, offset, fh):
        return os.pwrite(fh, buf, offset)

    def truncate(self, path, length, fh=None):
        if fh is None:
            os.truncate(self._path(path), length)
        else:
            os.ftruncate(fh, length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return os.close(fh)

    def fsync(self, path, datasync, fh):
        time.sleep(self.seconds)
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)
        return 0


def main():
    if len(sys.argv) != 4:
        sys.exit('usage: slowDisk.py BACKING MOUNTPOINT SECONDS')
    backing, mountpoint, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    # direct_io off: the kernel's page cache serves reads, as on a disk; writes pass through at once.
    FUSE(SlowSync(backing, seconds), mountpoint, foreground=True, nothreads=False, allow_other=False)


if __name__ == '__main__':
    main()
