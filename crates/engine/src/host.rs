//! Host tuning berthd may be asked to apply at start (never by default: each changes how the
//! whole host behaves, so the administrator opts in).

use std::path::PathBuf;

/// Where the host's cgroup2 hierarchy is mounted (`/sys/fs/cgroup` on a pure v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one), and its current super options, from
/// `mountinfo`'s text.
fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split_whitespace();
        if r.next()? != "cgroup2" {
            return None;
        }
        let super_opts = r.nth(1).unwrap_or("").to_string();
        let mount_point = left.split_whitespace().nth(4)?;
        Some((PathBuf::from(mount_point), super_opts))
    })
}

/// The remount options that add `favordynmods` and keep every other cgroup2 option (a
/// cgroup2 remount resets the options it is not given).
fn with_favordynmods(super_opts: &str) -> Option<String> {
    let mut opts: Vec<&str> = super_opts
        .split(',')
        .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
        .collect();
    if opts.contains(&"favordynmods") {
        return None;
    }
    opts.push("favordynmods");
    Some(opts.join(","))
}

/// Remounts the host's cgroup2 hierarchy with `favordynmods`: the kernel then no longer waits
/// for an RCU grace period at every cgroup migration (on these VMs 5-20 ms at every container
/// start, on v1 and hybrid hosts as well, whose migrations take the same lock), at the cost
/// of slightly dearer forks and exits host-wide. Returns what was done, for the log.
pub fn favor_dynamic_cgroup_changes() -> std::io::Result<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let Some((path, opts)) = cgroup2_mount(&info) else {
        return Ok("no cgroup2 hierarchy is mounted: nothing to tune".into());
    };
    let Some(new) = with_favordynmods(&opts) else {
        return Ok(format!("{} already favors dynamic changes", path.display()));
    };
    rustix::mount::mount_remount(&path, rustix::mount::MountFlags::empty(), new.as_str())?;
    Ok(format!("remounted {} with {new}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup2_options_are_kept_and_favordynmods_added() {
        let hybrid = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "rw".into()))
        );
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let (p, o) = cgroup2_mount(v2).unwrap();
        assert_eq!(p, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(
            with_favordynmods(&o).as_deref(),
            Some("nsdelegate,memory_recursiveprot,favordynmods")
        );
        assert_eq!(with_favordynmods("rw,favordynmods"), None);
        assert_eq!(
            cgroup2_mount("22 1 0:21 / /sys rw - sysfs sysfs rw\n"),
            None
        );
    }
}
