//! Docker's default seccomp profile, as data of our own: which syscalls every container may
//! make, and which only with the capability (or on the architecture) that they belong to.

use super::{ArchMap, Arg, Profile, Syscall};

/// The conditions of one group of rules in [`default_profile`].
#[derive(Clone, Copy)]
enum When {
    Always,
    Cap(&'static str),
    NoCap(&'static str),
    Arch(&'static [&'static str]),
    Kernel(&'static str),
}

/// A rule for `names` (separated by whitespace).
fn rule(names: &str, action: &str, when: When) -> Syscall {
    let mut s = Syscall {
        names: names.split_whitespace().map(String::from).collect(),
        action: action.into(),
        ..Default::default()
    };
    match when {
        When::Always => {}
        When::Cap(c) => s.includes.caps = vec![c.into()],
        When::NoCap(c) => s.excludes.caps = vec![c.into()],
        When::Arch(a) => s.includes.arches = a.iter().map(|a| a.to_string()).collect(),
        When::Kernel(k) => s.includes.min_kernel = Some(k.into()),
    }
    s
}

fn with_arg(mut s: Syscall, index: u32, value: u64, op: &str) -> Syscall {
    s.args.push(Arg {
        index,
        value,
        value_two: 0,
        op: op.into(),
    });
    s
}

const ALLOW: &str = "SCMP_ACT_ALLOW";

/// Allowed for every container: everything a program needs that cannot reach past its
/// namespaces, cgroups and capabilities.
const ALWAYS: &str = "\
    accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 \
    clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime \
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect \
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old \
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit \
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir \
    fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr \
    flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 \
    fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv \
    futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 \
    getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid \
    getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list \
    getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 \
    getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl \
    io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup \
    io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown \
    lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek \
    lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret \
    mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr \
    mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 \
    mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap \
    name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open \
    pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 \
    prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 \
    pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg \
    recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2 \
    restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo \
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo \
    sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
    sched_get_priority_min sched_getscheduler sched_rr_get_interval \
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam \
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop \
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 \
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority \
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 \
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 \
    setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask \
    sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat \
    sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete \
    timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create \
    timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate \
    truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes \
    vfork vmsplice wait4 waitid waitpid write writev";

/// Syscalls that act beyond the container, allowed only with the capability that stands for
/// them.
const BY_CAP: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname \
         sethostname setns syslog umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    (
        "CAP_SYS_TIME",
        "settimeofday stime clock_settime clock_settime64",
    ),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// Architecture-specific syscalls, by Go's architecture names.
const BY_ARCH: &[(&[&str], &str)] = &[
    (&["ppc64le"], "sync_file_range2 swapcontext"),
    (
        &["arm", "arm64"],
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    (&["amd64", "x32"], "arch_prctl"),
    (&["amd64", "x32", "x86"], "modify_ldt"),
    (
        &["s390", "s390x"],
        "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
    ),
    (&["riscv64"], "riscv_flush_icache"),
];

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET`: `clone` with none of these is an ordinary fork or thread.
const CLONE_NS_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// Docker's default seccomp profile (what `docker run` applies unless told otherwise).
pub fn default_profile() -> &'static Profile {
    static P: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let mut syscalls = vec![
            rule(ALWAYS, ALLOW, When::Always),
            // Reading another process's memory: since 4.8 seccomp cannot be bypassed
            // through ptrace, so these are safe for a process's own children.
            rule(
                "process_vm_readv process_vm_writev ptrace",
                ALLOW,
                When::Kernel("4.8"),
            ),
            // Any socket but AF_VSOCK (40), which reaches the hypervisor.
            with_arg(rule("socket", ALLOW, When::Always), 0, 40, "SCMP_CMP_NE"),
        ];
        // personality(2) only for the harmless personas: PER_LINUX, PER_LINUX32,
        // UNAME26, UNAME26|PER_LINUX32, and the query (0xffffffff).
        for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
            syscalls.push(with_arg(
                rule("personality", ALLOW, When::Always),
                0,
                persona,
                "SCMP_CMP_EQ",
            ));
        }
        for (arches, names) in BY_ARCH {
            syscalls.push(rule(names, ALLOW, When::Arch(arches)));
        }
        for (cap, names) in BY_CAP {
            syscalls.push(rule(names, ALLOW, When::Cap(cap)));
        }
        // Without CAP_SYS_ADMIN: clone without namespace flags (flags are argument 0, but
        // argument 1 on s390)...
        let mut plain_clone = with_arg(
            rule("clone", ALLOW, When::NoCap("CAP_SYS_ADMIN")),
            0,
            CLONE_NS_FLAGS,
            "SCMP_CMP_MASKED_EQ",
        );
        plain_clone.args[0].value_two = 0;
        plain_clone.excludes.arches = vec!["s390".into(), "s390x".into()];
        syscalls.push(plain_clone);
        let mut s390_clone = with_arg(
            rule("clone", ALLOW, When::NoCap("CAP_SYS_ADMIN")),
            1,
            CLONE_NS_FLAGS,
            "SCMP_CMP_MASKED_EQ",
        );
        s390_clone.includes.arches = vec!["s390".into(), "s390x".into()];
        syscalls.push(s390_clone);
        // ... and clone3 (whose flags live in memory seccomp cannot read) as ENOSYS, so that
        // libcs fall back to clone.
        let mut clone3 = rule("clone3", "SCMP_ACT_ERRNO", When::NoCap("CAP_SYS_ADMIN"));
        clone3.errno_ret = Some(libc::ENOSYS as u32);
        syscalls.push(clone3);
        Profile {
            default_action: "SCMP_ACT_ERRNO".into(),
            default_errno_ret: Some(libc::EPERM as u32),
            arch_map: [
                ("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"][..]),
                ("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
                (
                    "SCMP_ARCH_MIPS64",
                    &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
                ),
                (
                    "SCMP_ARCH_MIPS64N32",
                    &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
                ),
                (
                    "SCMP_ARCH_MIPSEL64",
                    &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
                ),
                (
                    "SCMP_ARCH_MIPSEL64N32",
                    &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"],
                ),
                ("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
                ("SCMP_ARCH_RISCV64", &[]),
            ]
            .iter()
            .map(|(a, subs)| ArchMap {
                architecture: a.to_string(),
                sub_architectures: subs.iter().map(|s| s.to_string()).collect(),
            })
            .collect(),
            syscalls,
            ..Default::default()
        }
    })
}
