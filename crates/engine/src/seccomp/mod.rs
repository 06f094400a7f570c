//! Seccomp profiles in Docker's format, and Docker's default profile.
//!
//! Docker's profiles are not OCI seccomp sections: a rule may depend on the container's
//! capabilities (`includes.caps` / `excludes.caps`), the host's architecture and its kernel
//! version, and architectures come as an `archMap` keyed by the native one. dockerd resolves
//! all of that when it builds the container's spec (moby `profiles/seccomp`); so does
//! [`Profile::to_oci`], so that the runtime receives plain OCI rules.
//!
//! The default profile ([`default_profile`]) allows what Docker's allows: the ordinary
//! syscalls always, the privileged ones (`mount`, `ptrace`, `reboot`, module loading...) only
//! when the container holds the capability that makes them useful, `clone` without namespace
//! flags, `clone3` answered with ENOSYS unless CAP_SYS_ADMIN (so that libcs fall back to
//! `clone`, which can be inspected), and everything else fails with EPERM. The rules are
//! written here as data of our own; the syscall names are the kernel's.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::spec::SpecError;

/// A seccomp profile as Docker's `--security-opt seccomp=<file>` takes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// What a syscall that no rule names gets (`SCMP_ACT_ERRNO`, ...).
    pub default_action: String,
    /// The errno of `default_action` when it is `SCMP_ACT_ERRNO` (EPERM if unset).
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Architectures, the OCI way (cannot be combined with `arch_map`).
    #[serde(default, deserialize_with = "null_default")]
    pub architectures: Vec<String>,
    /// Architectures keyed by the native one, Docker's way.
    #[serde(default, deserialize_with = "null_default")]
    pub arch_map: Vec<ArchMap>,
    /// The rules, in order.
    #[serde(default, deserialize_with = "null_default")]
    pub syscalls: Vec<Syscall>,
    /// Filter flags (`SECCOMP_FILTER_FLAG_LOG`, ...).
    #[serde(default, deserialize_with = "null_default")]
    pub flags: Vec<String>,
    /// A seccomp agent's socket (`SCMP_ACT_NOTIFY`): berth runs no agent.
    #[serde(default)]
    pub listener_path: Option<String>,
}

/// One `archMap` entry: when the host is `architecture`, these are allowed too.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The native architecture (`SCMP_ARCH_X86_64`).
    pub architecture: String,
    /// Its compatible ones (`SCMP_ARCH_X86`, `SCMP_ARCH_X32`).
    #[serde(default, deserialize_with = "null_default")]
    pub sub_architectures: Vec<String>,
}

/// One rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    /// The syscalls it is about.
    #[serde(default, deserialize_with = "null_default")]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default)]
    pub name: Option<String>,
    /// What they get.
    pub action: String,
    /// The errno of `SCMP_ACT_ERRNO` / `SCMP_ACT_TRACE`'s message.
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// Argument conditions, all of which must hold.
    #[serde(default, deserialize_with = "null_default")]
    pub args: Vec<Arg>,
    /// The rule applies only when all of these hold.
    #[serde(default)]
    pub includes: Filter,
    /// The rule does not apply when any of these holds.
    #[serde(default)]
    pub excludes: Filter,
}

/// A condition on one argument.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Which argument (0-5).
    pub index: u32,
    /// The value compared with.
    pub value: u64,
    /// The second value (`SCMP_CMP_MASKED_EQ`'s).
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_EQ`, `SCMP_CMP_MASKED_EQ`, ...
    pub op: String,
}

/// When a rule applies: capabilities of the container, the host's architecture, its kernel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Go's architecture names (`amd64`, `arm64`, `s390x`...), as Docker's profiles use.
    #[serde(default, deserialize_with = "null_default")]
    pub arches: Vec<String>,
    /// Capabilities (`CAP_SYS_ADMIN`).
    #[serde(default, deserialize_with = "null_default")]
    pub caps: Vec<String>,
    /// `major.minor`.
    #[serde(default)]
    pub min_kernel: Option<String>,
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
];

const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

const ARCHES: &[&str] = &[
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
];

const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// The host as a profile's conditions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Go's name of the architecture (`amd64`).
    pub arch: &'static str,
    /// The running kernel's `(major, minor)`.
    pub kernel: (u32, u32),
}

impl Host {
    /// This machine: the architecture berth was built for and the running kernel.
    pub fn current() -> Host {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        Host {
            arch: go_arch(std::env::consts::ARCH),
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }

    fn seccomp_arch(&self) -> Option<&'static str> {
        Some(match self.arch {
            "amd64" => "SCMP_ARCH_X86_64",
            "386" => "SCMP_ARCH_X86",
            "arm64" => "SCMP_ARCH_AARCH64",
            "arm" => "SCMP_ARCH_ARM",
            "mips64" => "SCMP_ARCH_MIPS64",
            "mips64le" => "SCMP_ARCH_MIPSEL64",
            "ppc64le" => "SCMP_ARCH_PPC64LE",
            "s390x" => "SCMP_ARCH_S390X",
            "riscv64" => "SCMP_ARCH_RISCV64",
            _ => return None,
        })
    }
}

/// Rust's architecture names to Go's, which Docker's profiles use.
fn go_arch(rust: &'static str) -> &'static str {
    match rust {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `6.1.0-18-amd64` -> `(6, 1)`.
fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().unwrap_or("0").parse().unwrap_or(0);
    Some((major, minor))
}

fn bad(msg: String) -> SpecError {
    SpecError(msg)
}

impl Profile {
    /// Parses a profile's JSON (what the docker CLI sends for `--security-opt
    /// seccomp=<file>`: the file's contents), checking every name in it, so that a bad
    /// profile is refused at create with what is wrong and where.
    pub fn parse(json: &str) -> Result<Profile, SpecError> {
        let p: Profile = serde_json::from_str(json).map_err(|e| {
            bad(format!(
                "Decoding seccomp profile failed: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), SpecError> {
        let action = |a: &str, what: &str| {
            if a == "SCMP_ACT_NOTIFY" {
                Err(bad(format!(
                    "seccomp profile: {what}: SCMP_ACT_NOTIFY needs a seccomp agent, which berth does not run"
                )))
            } else if ACTIONS.contains(&a) {
                Ok(())
            } else {
                Err(bad(format!(
                    "seccomp profile: {what}: unknown action {a:?} (one of {})",
                    ACTIONS.join(", ")
                )))
            }
        };
        action(&self.default_action, "defaultAction")?;
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(bad(
                "seccomp profile: use either 'architectures' or 'archMap', not both".into(),
            ));
        }
        for a in self.architectures.iter().chain(
            self.arch_map
                .iter()
                .flat_map(|m| std::iter::once(&m.architecture).chain(m.sub_architectures.iter())),
        ) {
            if !ARCHES.contains(&a.as_str()) {
                return Err(bad(format!("seccomp profile: unknown architecture {a:?}")));
            }
        }
        for f in &self.flags {
            if !FLAGS.contains(&f.as_str()) {
                return Err(bad(format!("seccomp profile: unknown flag {f:?}")));
            }
        }
        if self.listener_path.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(bad(
                "seccomp profile: listenerPath needs a seccomp agent, which berth does not run"
                    .into(),
            ));
        }
        for (n, s) in self.syscalls.iter().enumerate() {
            let what = format!("syscalls[{n}]");
            if s.name.is_some() && !s.names.is_empty() {
                return Err(bad(format!(
                    "seccomp profile: {what}: use either 'name' or 'names', not both"
                )));
            }
            if s.name.is_none() && s.names.is_empty() {
                return Err(bad(format!("seccomp profile: {what}: names no syscall")));
            }
            action(&s.action, &what)?;
            for a in &s.args {
                if a.index > 5 {
                    return Err(bad(format!(
                        "seccomp profile: {what}: argument index {} (syscalls have 6: 0-5)",
                        a.index
                    )));
                }
                if !OPS.contains(&a.op.as_str()) {
                    return Err(bad(format!(
                        "seccomp profile: {what}: unknown operator {:?} (one of {})",
                        a.op,
                        OPS.join(", ")
                    )));
                }
            }
            for k in [&s.includes.min_kernel, &s.excludes.min_kernel]
                .into_iter()
                .flatten()
            {
                if !k.contains('.') || parse_kernel(k).is_none() {
                    return Err(bad(format!(
                        "seccomp profile: {what}: invalid minKernel {k:?} (expected major.minor)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The OCI `linux.seccomp` section for a container holding `caps` (its bounding set) on
    /// `host`: conditions resolved, architectures made explicit.
    pub fn to_oci(&self, caps: &[String], host: Host) -> Value {
        let mut architectures = self.architectures.clone();
        if let Some(native) = host.seccomp_arch() {
            for m in self.arch_map.iter().filter(|m| m.architecture == native) {
                architectures.push(m.architecture.clone());
                architectures.extend(m.sub_architectures.iter().cloned());
            }
        }
        let has = |c: &String| caps.contains(c);
        let kernel_at_least = |k: &Option<String>| {
            k.as_deref()
                .and_then(parse_kernel)
                .map(|m| host.kernel >= m)
        };
        let mut syscalls = Vec::new();
        for s in &self.syscalls {
            let ex = &s.excludes;
            if ex.arches.iter().any(|a| a == host.arch)
                || ex.caps.iter().any(has)
                || kernel_at_least(&ex.min_kernel) == Some(true)
            {
                continue;
            }
            let inc = &s.includes;
            if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host.arch))
                || !inc.caps.iter().all(has)
                || kernel_at_least(&inc.min_kernel) == Some(false)
            {
                continue;
            }
            let names: Vec<&String> = s.name.iter().chain(s.names.iter()).collect();
            let mut rule = json!({"names": names, "action": s.action});
            if let Some(e) = s.errno_ret {
                rule["errnoRet"] = json!(e);
            }
            if !s.args.is_empty() {
                rule["args"] = s
                    .args
                    .iter()
                    .map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}))
                    .collect();
            }
            syscalls.push(rule);
        }
        let mut out = json!({"defaultAction": self.default_action, "syscalls": syscalls});
        if let Some(e) = self.default_errno_ret {
            out["defaultErrnoRet"] = json!(e);
        }
        if !architectures.is_empty() {
            out["architectures"] = json!(architectures);
        }
        if !self.flags.is_empty() {
            out["flags"] = json!(self.flags);
        }
        out
    }
}

/// What `--security-opt seccomp=...` asked for.
#[derive(Debug, Clone)]
pub enum Choice {
    /// No `seccomp=` option, or `seccomp=builtin`: Docker's default profile.
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// A profile of the user's (the file's contents, as the docker CLI sends them).
    Custom(Box<Profile>),
}

impl Choice {
    /// Reads the value of a `seccomp=` security option.
    pub fn parse(value: &str) -> Result<Choice, SpecError> {
        Ok(match value {
            "unconfined" => Choice::Unconfined,
            "builtin" => Choice::Default,
            json if json.trim_start().starts_with('{') => {
                Choice::Custom(Box::new(Profile::parse(json)?))
            }
            path => {
                return Err(bad(format!(
                    "--security-opt seccomp={path:?}: expected a profile's JSON, \"unconfined\" or \"builtin\" (the docker CLI reads a profile file and sends its contents)"
                )))
            }
        })
    }
}

mod default;
pub use default::default_profile;

#[cfg(test)]
mod tests {
    use super::*;

    const AMD64: Host = Host {
        arch: "amd64",
        kernel: (6, 1),
    };

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|c| c.to_string()).collect()
    }

    fn allowed(oci: &Value, name: &str) -> Vec<Value> {
        oci["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    #[test]
    fn default_profile_follows_capabilities() {
        let p = default_profile();
        p.check().unwrap();
        let plain = p.to_oci(&caps(crate::spec::DEFAULT_CAPS), AMD64);
        assert_eq!(plain["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(plain["defaultErrnoRet"], libc::EPERM);
        assert_eq!(
            plain["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert!(allowed(&plain, "mount").is_empty());
        assert!(allowed(&plain, "reboot").is_empty());
        assert!(
            !allowed(&plain, "chroot").is_empty(),
            "CAP_SYS_CHROOT is a default"
        );
        assert!(!allowed(&plain, "arch_prctl").is_empty());
        assert!(allowed(&plain, "s390_runtime_instr").is_empty());
        // clone only without namespace flags, clone3 as ENOSYS.
        let clone = allowed(&plain, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0]["args"][0]["index"], 0);
        let clone3 = allowed(&plain, "clone3");
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], libc::ENOSYS);

        let mut with_admin = caps(crate::spec::DEFAULT_CAPS);
        with_admin.push("CAP_SYS_ADMIN".into());
        let admin = p.to_oci(&with_admin, AMD64);
        assert!(!allowed(&admin, "mount").is_empty());
        let clone = allowed(&admin, "clone");
        assert_eq!(clone.len(), 1);
        assert!(
            clone[0].get("args").is_none(),
            "any clone with CAP_SYS_ADMIN"
        );
        assert!(allowed(&admin, "clone3")
            .iter()
            .all(|r| r["action"] == "SCMP_ACT_ALLOW"));
    }

    #[test]
    fn conditions_on_kernel_and_arch() {
        let p = Profile::parse(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [
                  {"names": ["a"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "5.10"}},
                  {"names": ["b"], "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": "5.10"}},
                  {"name": "c", "action": "SCMP_ACT_KILL", "includes": {"arches": ["arm64"]}},
                  {"names": ["d"], "action": "SCMP_ACT_LOG", "excludes": {"arches": ["arm64"]},
                   "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_GT"}]}
                ]}"#,
        )
        .unwrap();
        let old = p.to_oci(
            &[],
            Host {
                arch: "amd64",
                kernel: (4, 19),
            },
        );
        let new = p.to_oci(
            &[],
            Host {
                arch: "amd64",
                kernel: (6, 1),
            },
        );
        let names = |v: &Value| -> Vec<String> {
            v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["names"][0].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&old), ["b", "d"]);
        assert_eq!(names(&new), ["a", "d"]);
        assert_eq!(new["syscalls"][1]["args"][0]["op"], "SCMP_CMP_GT");
        assert_eq!(new["architectures"], json!(["SCMP_ARCH_X86_64"]));
        let arm = p.to_oci(
            &[],
            Host {
                arch: "arm64",
                kernel: (6, 1),
            },
        );
        assert_eq!(names(&arm), ["a", "c"]);
    }

    #[test]
    fn bad_profiles_say_what_and_where() {
        for (json, want) in [
            ("{", "Decoding seccomp profile failed"),
            (
                r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
                "unknown action \"SCMP_ACT_NOPE\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW"}, {"names": ["y"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
                "syscalls[1]: argument index 7",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["y"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "EQ"}]}]}"#,
                "unknown operator \"EQ\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
                "unknown architecture",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#,
                "syscalls[0]: names no syscall",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
                "SCMP_ACT_NOTIFY needs a seccomp agent",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "six"}}]}"#,
                "invalid minKernel",
            ),
        ] {
            let e = Profile::parse(json).unwrap_err().0;
            assert!(e.contains(want), "{json}: {e}");
        }
        assert!(matches!(
            Choice::parse("unconfined"),
            Ok(Choice::Unconfined)
        ));
        assert!(matches!(Choice::parse("builtin"), Ok(Choice::Default)));
        let e = Choice::parse("/etc/profile.json").unwrap_err().0;
        assert!(e.contains("expected a profile's JSON"), "{e}");
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel("6.18"), Some((6, 18)));
        assert_eq!(parse_kernel("5"), Some((5, 0)));
        assert_eq!(parse_kernel("x"), None);
    }
}
