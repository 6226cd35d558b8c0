//! `zfs list -t snapshot` for monitoring: arguments and parsing. Pure.

use std::collections::BTreeMap;

/// One snapshot as `zfs list -H -p -o name,creation,used,guid` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotInfo {
    /// The dataset it belongs to.
    pub dataset: String,
    /// The part after `@`.
    pub name: String,
    /// Creation time, seconds since the epoch.
    pub creation: i64,
    /// Space only this snapshot holds, bytes.
    pub used: u64,
    /// The snapshot's GUID: the same on both sides of a `zfs send | zfs receive`.
    pub guid: String,
}

/// Every snapshot of a tree, by dataset, each list oldest first.
pub type SnapshotsByDataset = BTreeMap<String, Vec<SnapshotInfo>>;

/// `zfs list` arguments for every snapshot under (and of) `root`, oldest first, in ONE process.
/// `depth`: `None` for the whole tree (`-r`), `Some(1)` for the dataset's own snapshots.
#[must_use]
pub fn snapshot_list_args(root: &str, depth: Option<u32>) -> Vec<String> {
    let mut args: Vec<String> =
        ["list", "-H", "-p", "-t", "snapshot", "-o", "name,creation,used,guid", "-s", "createtxg"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
    match depth {
        None => args.push("-r".into()),
        Some(d) => args.extend(["-d".to_string(), d.to_string()]),
    }
    args.push(root.to_string());
    args
}

/// Parses `zfs list -H -p -t snapshot -o name,creation,used,guid` output, keeping the listed order.
pub fn parse_snapshot_list(output: &str) -> Result<SnapshotsByDataset, String> {
    let mut by_dataset: SnapshotsByDataset = BTreeMap::new();
    for (index, line) in output.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad =
            || format!("line {}: expected name, creation, used and guid separated by tabs, got {line:?}", index + 1);
        // A dataset name may hold spaces but never a tab, so splitting from the right is safe.
        let mut fields = line.rsplitn(4, '\t');
        let (Some(guid), Some(used), Some(creation), Some(full)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let (dataset, name) = full.split_once('@').ok_or_else(bad)?;
        super::parse::check_dataset_name(dataset).map_err(|why| format!("line {}: {why}", index + 1))?;
        super::parse::check_component(name).map_err(|why| format!("line {}: snapshot {full:?}: {why}", index + 1))?;
        if guid.is_empty() {
            return Err(format!("line {}: no guid", index + 1));
        }
        let creation =
            creation.parse().map_err(|_| format!("line {}: creation {creation:?} is not a number", index + 1))?;
        let used = used.parse().map_err(|_| format!("line {}: used {used:?} is not a number", index + 1))?;
        by_dataset.entry(dataset.to_string()).or_default().push(SnapshotInfo {
            dataset: dataset.to_string(),
            name: name.to_string(),
            creation,
            used,
            guid: guid.to_string(),
        });
    }
    Ok(by_dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_tree_is_one_process_oldest_first() {
        assert_eq!(
            snapshot_list_args("tank/my persist", None),
            [
                "list",
                "-H",
                "-p",
                "-t",
                "snapshot",
                "-o",
                "name,creation,used,guid",
                "-s",
                "createtxg",
                "-r",
                "tank/my persist"
            ]
        );
        assert_eq!(snapshot_list_args("backup/a", Some(1))[9..], ["-d", "1", "backup/a"]);
    }

    #[test]
    fn snapshots_parse_by_dataset_in_listed_order() {
        let out = "tank/persist/a@autosnap_2024-01-01_00:00:00_hourly\t1704067200\t0\t123\n\
                   tank/persist/my app@b\t1704070800\t4096\t456\n\
                   tank/persist/a@later\t1704074400\t8192\t789\n";
        let got = parse_snapshot_list(out).unwrap();
        assert_eq!(got.len(), 2);
        let a = &got["tank/persist/a"];
        assert_eq!(
            a.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["autosnap_2024-01-01_00:00:00_hourly", "later"]
        );
        assert_eq!(a[1].creation, 1_704_074_400);
        assert_eq!(a[1].used, 8192);
        assert_eq!(a[1].guid, "789");
        assert_eq!(got["tank/persist/my app"][0].dataset, "tank/persist/my app");
        assert!(parse_snapshot_list("").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "tank@a\t1\t2",
            "tank\t1\t2\t3",
            "tank@a\tnow\t2\t3",
            "tank@a\t1\tlots\t3",
            "tank@a\t1\t2\t",
            "tank/x\ty@a\t1\t2\t3",
            "tank@a@b\t1\t2\t3",
            "tank@\t1\t2\t3",
        ] {
            assert!(parse_snapshot_list(bad).is_err(), "{bad}");
        }
    }
}
