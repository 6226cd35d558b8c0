//! PURE: `/proc/self/mountinfo`, parsed, and the one question asked of it: is a dataset what a
//! process sees at its path? `persistctl::fsprobe` reads the table and the path's device.

/// One line of `/proc/self/mountinfo`, as far as telling which file system is mounted where goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted file system (ZFS datasets each have their own).
    pub device: (u64, u64),
    /// Where it is mounted (unescaped).
    pub mount_point: String,
    /// `zfs`, `tmpfs`, ...
    pub fstype: String,
    /// For ZFS, the dataset name (unescaped).
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(digits) = octal {
            let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text (PURE). A line that does not have the documented shape is an error: a reader
/// that guesses could take the wrong file system for a dataset.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, String> {
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || format!("mountinfo line {}: unexpected shape: {line:?}", n + 1);
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-").ok_or_else(bad)?;
        if dash < 6 || fields.len() < dash + 3 {
            return Err(bad());
        }
        let (major, minor) = fields[2].split_once(':').ok_or_else(bad)?;
        let device = (major.parse().map_err(|_| bad())?, minor.parse().map_err(|_| bad())?);
        entries.push(MountEntry {
            device,
            mount_point: unescape_mountinfo(fields[4]),
            fstype: fields[dash + 1].to_string(),
            source: unescape_mountinfo(fields[dash + 2]),
        });
    }
    Ok(entries)
}

/// PURE: whether `dataset` is what a process sees at `path`: the last (topmost) mount at `path` is that
/// ZFS dataset, and its device is the one `path` is on (`path_device`; a mount over a parent directory
/// would hide it). `Err`: what is there instead, for the refusal.
pub fn check_dataset_mount(
    entries: &[MountEntry],
    dataset: &str,
    path: &str,
    path_device: (u64, u64),
) -> Result<(), String> {
    let Some(top) = entries.iter().rev().find(|e| e.mount_point == path) else {
        return Err(format!("{path} is not a mount point: {dataset} is not mounted there"));
    };
    if top.fstype != "zfs" || top.source != dataset {
        return Err(format!(
            "{path} is not the mount of {dataset}: {} {:?} is mounted on top of it",
            top.fstype, top.source
        ));
    }
    if top.device != path_device {
        return Err(format!(
            "{path} is hidden: {dataset} is mounted there, but something is mounted over a directory above it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    const MOUNTINFO: &str = r"22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
45 22 0:44 / /persist rw shared:20 - zfs tank/persist rw,xattr,posixacl
46 45 0:45 / /persist/my\040app rw shared:21 - zfs tank/persist/my\040app rw
47 45 0:46 / /persist/sonarr rw shared:22 - zfs tank/persist/sonarr rw
48 47 0:47 / /persist/sonarr rw shared:23 - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_is_parsed_with_its_escapes() {
        let entries = parse_mountinfo(MOUNTINFO).unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(
            entries[2],
            MountEntry {
                device: (0, 45),
                mount_point: "/persist/my app".into(),
                fstype: "zfs".into(),
                source: "tank/persist/my app".into()
            }
        );
        assert!(parse_mountinfo("garbage line").unwrap_err().contains("line 1"));
        assert!(parse_mountinfo("1 2 x / /a rw - zfs t rw").is_err(), "a device that is not major:minor");
    }

    #[test]
    fn only_the_topmost_mount_of_the_right_dataset_counts() {
        let entries = parse_mountinfo(MOUNTINFO).unwrap();
        assert_eq!(check_dataset_mount(&entries, "tank/persist/my app", "/persist/my app", (0, 45)), Ok(()));
        let shadowed = check_dataset_mount(&entries, "tank/persist/sonarr", "/persist/sonarr", (0, 47)).unwrap_err();
        assert!(shadowed.contains("tmpfs \"tmpfs\" is mounted on top"), "{shadowed}");
        let wrong = check_dataset_mount(&entries, "tank/persist/radarr", "/persist", (0, 44)).unwrap_err();
        assert!(wrong.contains("not the mount of tank/persist/radarr"), "{wrong}");
        let absent = check_dataset_mount(&entries, "tank/persist/radarr", "/persist/radarr", (0, 44)).unwrap_err();
        assert!(absent.contains("not a mount point"), "{absent}");
        let hidden = check_dataset_mount(&entries, "tank/persist/my app", "/persist/my app", (0, 99)).unwrap_err();
        assert!(hidden.contains("hidden"), "{hidden}");
    }
}
