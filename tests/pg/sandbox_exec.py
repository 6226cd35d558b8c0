#!/usr/bin/python3
"""Run a command inside a stand-in for nixpkgs' postgresql.service sandbox (issue 11).

What systemd would set up for that unit, rebuilt from systemd's own rules (src/core/exec-invoke.c,
src/shared/seccomp-util.c and src/core/namespace.c of systemd v257.13, the same groups as v258) and
installed in this process, which then execs the command, so that the command and everything it
starts inherit it exactly as they inherit systemd's:

  SystemCallFilter=      the unit's lines in order (default: nixpkgs' @system-service, ~@privileged,
                         ~@resources); an allow-list starts with @default; a syscall outside it is
                         killed (SCMP_ACT_KILL_PROCESS: nixpkgs sets no SystemCallErrorNumber=), one
                         this libseccomp cannot name gets ENOSYS (systemd's override_default_action)
  MemoryDenyWriteExecute prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) as systemd >= 256 does on
                         Linux >= 6.3, or (--mdwe seccomp) systemd's seccomp fallback
  NoNewPrivileges, CapabilityBoundingSet="", User=, UMask=0027
  the seccomp side of RestrictAddressFamilies (AF_INET AF_INET6 AF_NETLINK AF_UNIX),
  RestrictNamespaces, RestrictRealtime, RestrictSUIDSGID, LockPersonality, ProtectKernelTunables,
  ProtectKernelModules, ProtectKernelLogs, ProtectClock, ProtectHostname, PrivateDevices,
  SystemCallArchitectures=native
  with --fs (as root): a mount namespace with ProtectSystem=strict (every mount read-only but the
  --rw paths), PrivateTmp, ProtectHome, PrivateDevices (a /dev of null zero full random urandom
  tty pts shm), ProtectKernelTunables (/proc/sys, /sys read-only), ProcSubset=pid +
  ProtectProc=invisible, and a UTS namespace (ProtectHostname)

Usage: sandbox_exec.py [--user NAME] [--fs --rw PATH...] [--filter LINE]... [--mdwe auto|prctl|
       seccomp|off] [--action kill|trap|log|errno] [--no-extras] -- COMMAND ARGS...
       sandbox_exec.py --describe [--filter LINE]...     the allow-list, one syscall a line
       sandbox_exec.py --probe RO_DIR                    (as the command) report what is in force

Needs Debian's python3-seccomp (libseccomp 2.5) for /usr/bin/python3, and root for --user/--fs.
"""

import argparse
import ctypes
import errno
import os
import pwd
import subprocess
import sys

import seccomp

# systemd v257.13 src/shared/seccomp-util.c, syscall_filter_sets[]: the groups nixpkgs' filter and
# the Protect*= settings use, as systemd lists them (a group may name other groups). v258 (NixOS
# 25.11) has the same members in every group used here; systemd 252 (Debian 12) lacks 18 newer
# syscalls in @default/@system-service and has the same @privileged and @resources
# (tests/pg/sandbox.sh prints the comparison).
GROUPS = {
    "@default": """
        @sandbox arch_prctl brk cacheflush clock_getres clock_getres_time64 clock_gettime
        clock_gettime64 clock_nanosleep clock_nanosleep_time64 execve exit exit_group futex
        futex_time64 futex_waitv get_robust_list get_thread_area getegid getegid32 geteuid geteuid32
        getgid getgid32 getgroups getgroups32 getpgid getpgrp getpid getppid getrandom getresgid
        getresgid32 getresuid getresuid32 getrlimit getsid gettid gettimeofday getuid getuid32
        lsm_get_self_attr lsm_list_modules membarrier mmap mmap2 mprotect mseal munmap nanosleep
        pause prlimit64 restart_syscall riscv_flush_icache riscv_hwprobe rseq rt_sigreturn
        sched_getaffinity sched_yield set_robust_list set_thread_area set_tid_address set_tls
        sigreturn time ugetrlimit uretprobe
    """,
    "@sandbox": """
        landlock_add_rule landlock_create_ruleset landlock_restrict_self seccomp
    """,
    "@system-service": """
        @aio @basic-io @chown @default @file-system @io-event @ipc @keyring @memlock @network-io
        @process @resources @setuid @signal @sync @timer arm_fadvise64_64 capget capset
        copy_file_range fadvise64 fadvise64_64 flock get_mempolicy getcpu getpriority ioctl
        ioprio_get kcmp madvise mremap name_to_handle_at oldolduname olduname personality readahead
        readdir remap_file_pages sched_get_priority_max sched_get_priority_min sched_getattr
        sched_getparam sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
        sched_yield sendfile sendfile64 setfsgid setfsgid32 setfsuid setfsuid32 setpgid setsid
        splice sysinfo tee umask uname userfaultfd vmsplice
    """,
    "@aio": """
        io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit
        io_uring_enter io_uring_register io_uring_setup
    """,
    "@basic-io": """
        _llseek close close_range dup dup2 dup3 llseek lseek pread64 preadv preadv2 pwrite64 pwritev
        pwritev2 read readv write writev
    """,
    "@chown": """
        chown chown32 fchown fchown32 fchownat lchown lchown32
    """,
    "@file-system": """
        access chdir chmod close creat faccessat faccessat2 fallocate fchdir fchmod fchmodat
        fchmodat2 fcntl fcntl64 fgetxattr file_getattr file_setattr flistxattr fremovexattr
        fsetxattr fstat fstat64 fstatat fstatat64 fstatfs fstatfs64 ftruncate ftruncate64 futimesat
        getcwd getdents getdents64 getxattr getxattrat inotify_add_watch inotify_init inotify_init1
        inotify_rm_watch lgetxattr link linkat listmount listxattr listxattrat llistxattr
        lremovexattr lsetxattr lstat lstat64 mkdir mkdirat mknod mknodat newfstat newfstatat
        oldfstat oldlstat oldstat open openat openat2 readlink readlinkat removexattr removexattrat
        rename renameat renameat2 rmdir setxattr setxattrat stat stat64 statfs statfs64 statmount
        statx symlink symlinkat truncate truncate64 unlink unlinkat utime utimensat utimensat_time64
        utimes
    """,
    "@io-event": """
        _newselect epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
        epoll_wait epoll_wait_old eventfd eventfd2 poll ppoll ppoll_time64 pselect6 pselect6_time64
        select
    """,
    "@ipc": """
        ipc memfd_create mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
        mq_timedsend mq_timedsend_time64 mq_unlink msgctl msgget msgrcv msgsnd pipe pipe2
        process_madvise process_vm_readv process_vm_writev semctl semget semop semtimedop
        semtimedop_time64 shmat shmctl shmdt shmget
    """,
    "@keyring": """
        add_key keyctl request_key
    """,
    "@memlock": """
        mlock mlock2 mlockall munlock munlockall
    """,
    "@network-io": """
        accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom recvmmsg
        recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socket socketcall
        socketpair
    """,
    "@process": """
        capget clone clone3 execveat fork getrusage kill pidfd_open pidfd_send_signal prctl
        rt_sigqueueinfo rt_tgsigqueueinfo setns swapcontext tgkill times tkill unshare vfork wait4
        waitid waitpid
    """,
    "@resources": """
        ioprio_set mbind migrate_pages move_pages nice sched_setaffinity sched_setattr
        sched_setparam sched_setscheduler set_mempolicy set_mempolicy_home_node setpriority
        setrlimit
    """,
    "@setuid": """
        setgid setgid32 setgroups setgroups32 setregid setregid32 setresgid setresgid32 setresuid
        setresuid32 setreuid setreuid32 setuid setuid32
    """,
    "@signal": """
        rt_sigaction rt_sigpending rt_sigprocmask rt_sigsuspend rt_sigtimedwait
        rt_sigtimedwait_time64 sigaction sigaltstack signal signalfd signalfd4 sigpending
        sigprocmask sigsuspend
    """,
    "@sync": """
        fdatasync fsync msync sync sync_file_range sync_file_range2 syncfs
    """,
    "@timer": """
        alarm getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime
        timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
        timerfd_gettime64 timerfd_settime timerfd_settime64 times
    """,
    "@privileged": """
        @chown @clock @module @raw-io @reboot @swap _sysctl acct bpf capset chroot fanotify_init
        fanotify_mark nfsservctl open_by_handle_at pivot_root quotactl quotactl_fd setdomainname
        setfsuid setfsuid32 setgroups setgroups32 sethostname setresuid setresuid32 setreuid
        setreuid32 setuid setuid32 vhangup
    """,
    "@clock": """
        adjtimex clock_adjtime clock_adjtime64 clock_settime clock_settime64 settimeofday
    """,
    "@module": """
        delete_module finit_module init_module
    """,
    "@raw-io": """
        ioperm iopl pciconfig_iobase pciconfig_read pciconfig_write s390_pci_mmio_read
        s390_pci_mmio_write
    """,
    "@reboot": """
        kexec_file_load kexec_load reboot
    """,
    "@swap": """
        swapoff swapon
    """,
}
GROUPS = {k: v.split() for k, v in GROUPS.items()}

# nixpkgs nixos/modules/services/databases/postgresql.nix: services.postgresql.systemCallFilter's
# default, rendered one SystemCallFilter= line per entry, sorted by priority (@… 500, ~@… 1000).
NIXPKGS_FILTER = ["@system-service", "~@privileged", "~@resources"]

NATIVE = seccomp.Arch.NATIVE
NOT_KNOWN = {b"nfsservctl"}
libc = ctypes.CDLL(None, use_errno=True)

PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 24, 47, 4
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
CLONE_NEWNS, CLONE_NEWUTS = 0x00020000, 0x04000000
# namespace_info[] (src/basic/namespace-util.c): cgroup ipc net mnt pid user uts time
NAMESPACE_FLAGS = [0x02000000, 0x08000000, 0x40000000, 0x00020000, 0x20000000, 0x10000000,
                   0x04000000, 0x00000080]
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
PROT_WRITE, PROT_EXEC, SHM_EXEC, O_CREAT = 0x2, 0x4, 0o100000, 0o100
SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5


def prctl(*args):
    args = [ctypes.c_ulong(a) for a in args] + [ctypes.c_ulong(0)] * (5 - len(args))
    r = libc.prctl(*args)
    return r, ctypes.get_errno()


def expand(name):
    if name.startswith("@"):
        out = set()
        for item in GROUPS[name]:
            out |= expand(item)
        return out
    return {name}


def parse_filter(lines):
    """config_parse_syscall_filter + seccomp_parse_syscall_filter: (allow_list, names)."""
    names, allow_list, first = set(), False, True
    for line in lines:
        invert = line.startswith("~")
        words = (line[1:] if invert else line).split()
        if first:
            first = False
            allow_list = not invert
            if allow_list:
                names |= expand("@default")
        for word in words:
            if word.startswith("@") and word not in GROUPS:
                sys.exit(f"sandbox_exec: syscall group {word} is not in this stand-in's table")
            # allow-list: "~" removes; deny-list (first line "~"): "~" adds to what is denied
            if invert == allow_list:
                names -= expand(word)
            else:
                names |= expand(word)
    return allow_list, names


def resolve(name):
    nr = seccomp.resolve_syscall(NATIVE, name)
    return nr if nr >= 0 else None  # -1: unknown to this libseccomp; < -1: not on this arch


def new_filter(default):
    f = seccomp.SyscallFilter(default)
    f.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.ALLOW)  # seccomp_init_for_arch()
    f.set_attr(seccomp.Attr.CTL_NNP, 0)
    return f


def add(f, action, name, *args):
    try:
        f.add_rule_exactly(action, name, *args)
    except (RuntimeError, ValueError):
        pass  # EDOM: not on this architecture (systemd ignores it too)


def syscall_filter(lines, kill):
    allow_list, names = parse_filter(lines)
    assert allow_list, "only allow-lists are emulated"
    allowed = {nr for nr in map(resolve, names) if nr is not None}
    f = new_filter(seccomp.ERRNO(errno.ENOSYS))  # override_default_action()
    for nr in sorted(allowed):
        add(f, seccomp.ALLOW, nr)
    # every syscall of @known that is not allowed gets the real default action. Of the names this
    # libseccomp (2.5.4) knows on x86-64, all but nfsservctl are in systemd 257's @known
    # (src/basic/syscall-list.txt + @obsolete): nfsservctl keeps the ENOSYS default.
    for nr in range(0, 1024):
        if nr in allowed:
            continue
        try:
            name = seccomp.resolve_syscall(NATIVE, nr)
        except ValueError:
            continue
        if name not in NOT_KNOWN:
            add(f, kill, nr)
    f.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
    return f


def extra_filters(mdwe_seccomp):
    """The other seccomp-based settings of the unit, in exec-invoke.c's order."""
    eperm, A = seccomp.ERRNO(errno.EPERM), seccomp.Arg
    out = []
    # RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX (an allow-list)
    f = new_filter(seccomp.ALLOW)
    fams = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK}
    efam = seccomp.ERRNO(errno.EAFNOSUPPORT)
    add(f, efam, "socket", A(0, seccomp.LT, min(fams)))
    add(f, efam, "socket", A(0, seccomp.GT, max(fams)))
    for af in range(1, max(fams)):
        if af not in fams:
            add(f, efam, "socket", A(0, seccomp.EQ, af))
    out.append(("RestrictAddressFamilies", f))
    if mdwe_seccomp:  # seccomp_memory_deny_write_execute(), x86-64
        f = new_filter(seccomp.ALLOW)
        add(f, eperm, "mmap", A(2, seccomp.MASKED_EQ, PROT_EXEC | PROT_WRITE, PROT_EXEC | PROT_WRITE))
        add(f, eperm, "mprotect", A(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        add(f, eperm, "pkey_mprotect", A(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        add(f, eperm, "shmat", A(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
        out.append(("MemoryDenyWriteExecute(seccomp)", f))
    # RestrictRealtime=true: SCHED_OTHER, SCHED_BATCH, SCHED_IDLE only
    f = new_filter(seccomp.ALLOW)
    for p in range(0, SCHED_IDLE):
        if p not in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE):
            add(f, eperm, "sched_setscheduler", A(1, seccomp.EQ, p))
    add(f, eperm, "sched_setscheduler", A(1, seccomp.GT, SCHED_IDLE))
    out.append(("RestrictRealtime", f))
    # RestrictSUIDSGID=true
    f = new_filter(seccomp.ALLOW)
    for m in (0o4000, 0o2000):
        for name, i in (("chmod", 1), ("fchmod", 1), ("fchmodat", 2), ("fchmodat2", 2), ("mkdir", 1),
                        ("mkdirat", 2), ("mknod", 1), ("mknodat", 2), ("creat", 1)):
            add(f, eperm, name, A(i, seccomp.MASKED_EQ, m, m))
        add(f, eperm, "open", A(1, seccomp.MASKED_EQ, O_CREAT, O_CREAT), A(2, seccomp.MASKED_EQ, m, m))
        add(f, eperm, "openat", A(2, seccomp.MASKED_EQ, O_CREAT, O_CREAT), A(3, seccomp.MASKED_EQ, m, m))
    add(f, seccomp.ERRNO(errno.ENOSYS), "openat2")
    out.append(("RestrictSUIDSGID", f))
    # RestrictNamespaces=true (nothing retained)
    f = new_filter(seccomp.ALLOW)
    add(f, seccomp.ERRNO(errno.ENOSYS), "clone3")
    add(f, eperm, "setns")
    for flag in NAMESPACE_FLAGS:
        add(f, eperm, "unshare", A(0, seccomp.MASKED_EQ, flag, flag))
        add(f, eperm, "clone", A(0, seccomp.MASKED_EQ, flag, flag))
    out.append(("RestrictNamespaces", f))
    for what, names in (("ProtectKernelTunables", ["_sysctl"]),
                        ("ProtectKernelModules", sorted(expand("@module"))),
                        ("ProtectKernelLogs", ["syslog"]),
                        ("ProtectClock", sorted(expand("@clock"))),
                        ("PrivateDevices", sorted(expand("@raw-io"))),
                        ("ProtectHostname", ["sethostname", "setdomainname"])):
        f = new_filter(seccomp.ALLOW)
        for n in names:
            if resolve(n) is not None:
                add(f, eperm, n)
        out.append((what, f))
    # SystemCallArchitectures=native: a filter of the native architecture only kills the others
    out.append(("SystemCallArchitectures", seccomp.SyscallFilter(seccomp.ALLOW)))
    # LockPersonality=true: PER_LINUX
    f = new_filter(seccomp.ALLOW)
    add(f, eperm, "personality", A(0, seccomp.NE, 0))
    out.append(("LockPersonality", f))
    return out


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def mountpoints():
    with open("/proc/self/mountinfo") as fh:
        return [line.split()[4].replace("\\040", " ") for line in fh]


def fs_sandbox(rw_paths):
    """A mount namespace as namespace.c builds it for this unit (the parts a service sees)."""
    if libc.unshare(CLONE_NEWNS | CLONE_NEWUTS) != 0:
        sys.exit(f"sandbox_exec: unshare: {os.strerror(ctypes.get_errno())}")
    run(["mount", "--make-rslave", "/"])
    # PrivateDevices=true: a new /dev (read-only) with the API devices, pts and shm
    stage = "/run/.persistctl-sandbox-dev.%d" % os.getpid()
    os.mkdir(stage, 0o755)
    run(["mount", "-t", "tmpfs", "-o", "mode=755,nosuid,noexec", "tmpfs", stage])
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        open(f"{stage}/{node}", "w").close()
        run(["mount", "--bind", f"/dev/{node}", f"{stage}/{node}"])
    for d in ("pts", "shm"):
        os.mkdir(f"{stage}/{d}")
        run(["mount", "--bind", f"/dev/{d}", f"{stage}/{d}"])
    os.symlink("pts/ptmx", f"{stage}/ptmx")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{stage}/{name}")
    run(["mount", "-o", "remount,bind,ro", stage])
    run(["mount", "--move", stage, "/dev"])
    os.rmdir(stage)
    # ProcSubset=pid, ProtectProc=invisible
    run(["mount", "-t", "proc", "-o", "nosuid,nodev,noexec,hidepid=invisible,subset=pid", "proc", "/proc"])
    # PrivateTmp=true, ProtectHome=true
    for d in ("/tmp", "/var/tmp"):
        run(["mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", d])
    for d in ("/home", "/root", "/run/user"):
        if os.path.isdir(d):
            run(["mount", "-t", "tmpfs", "-o", "mode=000,ro,nosuid,nodev,noexec", "tmpfs", d])
    # ProtectSystem=strict (+ ProtectKernelTunables/ControlGroups for /sys): everything read-only
    # but /dev, /proc, the private /tmp and /var/tmp; then ReadWritePaths=
    keep_rw = ("/dev", "/proc", "/tmp", "/var/tmp")
    for mp in sorted(set(mountpoints()), key=len):
        if any(mp == k or mp.startswith(k + "/") for k in keep_rw):
            continue
        subprocess.run(["mount", "-o", "remount,bind,ro", mp], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    for p in rw_paths:
        run(["mount", "--bind", p, p])
        run(["mount", "-o", "remount,bind,rw", p])


def drop_to(user, last):
    pw = pwd.getpwnam(user)
    for cap in range(last + 1):  # CapabilityBoundingSet=""
        prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.initgroups(user, pw.pw_gid)
    os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
    os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)


def probe(ro_dir):
    """Run as the sandboxed command: what is in force, and forbidden calls fail as systemd's do.
    `ro_dir`: a directory the user owns outside ReadWritePaths= (ProtectSystem=strict: EROFS)."""
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    rows = [("uid", str(os.getuid())),
            ("Seccomp", status["Seccomp"].strip()),
            ("Seccomp_filters", status.get("Seccomp_filters", "?").strip()),
            ("NoNewPrivs", status["NoNewPrivs"].strip()),
            ("CapBnd", status["CapBnd"].strip()),
            ("CapEff", status["CapEff"].strip()),
            ("umask", "%04o" % int(status["Umask"].strip(), 8)),
            ("MDWE", str(prctl(PR_GET_MDWE)[0]))]
    libc.syscall.restype = ctypes.c_long
    lim = (ctypes.c_ulong * 2)(*[min(v, 1 << 20) for v in __import__("resource").getrlimit(7)])

    def in_child(fn):
        pid = os.fork()
        if pid == 0:
            try:
                r = fn()
                os._exit(0 if r >= 0 else min(ctypes.get_errno(), 125))
            except OSError as e:
                os._exit(min(e.errno, 125))
            except BaseException:
                os._exit(126)
        _, st = os.waitpid(pid, 0)
        if os.WIFSIGNALED(st):
            return "killed by signal %d%s" % (os.WTERMSIG(st), " (SIGSYS)" if os.WTERMSIG(st) == 31 else "")
        code = os.WEXITSTATUS(st)
        return "ok" if code == 0 else errno.errorcode.get(code, str(code))

    checks = [
        ("setrlimit syscall (@resources)", lambda: libc.syscall(160, 7, ctypes.byref(lim))),
        ("prlimit64 (glibc's setrlimit)", lambda: libc.syscall(302, 0, 7, ctypes.byref(lim), None)),
        ("fchown (@privileged/@chown)", lambda: libc.syscall(93, 0, os.getuid(), os.getgid())),
        ("setuid (@privileged)", lambda: libc.syscall(105, os.getuid())),
        ("sched_setaffinity (@resources)", lambda: libc.syscall(203, 0, 8, ctypes.byref(ctypes.c_ulong(1)))),
        ("mmap W+X (MDWE)", lambda: libc.syscall(9, 0, 4096, PROT_WRITE | PROT_EXEC | 1, 0x22, -1, 0)),
        ("socket AF_PACKET", lambda: libc.syscall(41, 17, 3, 0)),
        ("socket AF_INET", lambda: libc.syscall(41, AF_INET, 1, 0)),
        ("unshare CLONE_NEWUSER", lambda: libc.syscall(272, 0x10000000)),
        ("clone3", lambda: libc.syscall(435, 0, 0)),
        ("personality(PER_LINUX32)", lambda: libc.syscall(135, 8)),
        ("create a file in " + ro_dir, lambda: os.open(ro_dir + "/probe", os.O_CREAT | os.O_WRONLY, 0o600)),
        ("read /proc/cpuinfo", lambda: os.open("/proc/cpuinfo", os.O_RDONLY)),
    ]
    for name, fn in checks:
        rows.append((name, in_child(fn)))
    for k, v in rows:
        print(f"{k}\t{v}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--user")
    ap.add_argument("--fs", action="store_true")
    ap.add_argument("--rw", action="append", default=[])
    ap.add_argument("--filter", action="append")
    ap.add_argument("--mdwe", choices=["auto", "prctl", "seccomp", "off"], default="auto")
    ap.add_argument("--action", choices=["kill", "trap", "log", "errno"], default="kill")
    ap.add_argument("--no-extras", action="store_true")
    ap.add_argument("--describe", action="store_true")
    ap.add_argument("--probe", metavar="RO_DIR")
    ap.add_argument("cmd", nargs="*")
    a = ap.parse_args()
    lines = a.filter or NIXPKGS_FILTER
    if a.probe:
        return probe(a.probe)
    if a.describe:
        for n in sorted(parse_filter(lines)[1]):
            print(n)
        return 0
    if not a.cmd:
        ap.error("no command")
    with open("/proc/sys/kernel/cap_last_cap") as fh:  # before ProcSubset=pid hides it
        last_cap = int(fh.read())
    if a.fs:
        fs_sandbox(a.rw)
    if a.user:
        drop_to(a.user, last_cap)
    os.umask(0o027)
    if prctl(PR_SET_NO_NEW_PRIVS, 1)[0] != 0:
        sys.exit("sandbox_exec: PR_SET_NO_NEW_PRIVS failed")
    mdwe_seccomp = a.mdwe == "seccomp"
    if a.mdwe in ("auto", "prctl"):
        r, e = prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)
        if r != 0:
            if a.mdwe == "prctl" or e != errno.EINVAL:
                sys.exit(f"sandbox_exec: PR_SET_MDWE: {os.strerror(e)}")
            mdwe_seccomp = True  # systemd's fallback on Linux < 6.3
    kill = {"kill": seccomp.KILL_PROCESS, "trap": seccomp.TRAP, "log": seccomp.LOG,
            "errno": seccomp.ERRNO(errno.EPERM)}[a.action]
    filters = [] if a.no_extras else extra_filters(mdwe_seccomp)
    filters.append(("SystemCallFilter", syscall_filter(lines, kill)))
    for _, f in filters:
        f.load()
    try:
        os.execvp(a.cmd[0], a.cmd)
    except OSError as e:
        print(f"sandbox_exec: {a.cmd[0]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
