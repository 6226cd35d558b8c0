//! The Nix side, evaluated for real: nixpkgs' `lib.evalModules` (from `NIXPKGS_LIB`, a directory
//! holding nixpkgs' `lib/`) through `nix-instantiate`.
//!
//! - the examples render the JSON the seed's property matrix asks for, and the committed fixtures
//!   (applied by the real-ZFS tests) are what they render;
//! - every wrong value in `tests/nix/bad/` fails evaluation with a message naming the option;
//! - the NixOS wiring (units, ordering, data directories, restic jobs) in a miniature NixOS;
//! - every `.nix` file parses, `docs/options.md` is current, every option is documented;
//! - the rendered fixtures pass the binary's own `check-config`.
//!
//! The lib is `NIXPKGS_LIB`, or else `<repository>/../shared/nixpkgs-lib`; `build.rs` looks for it
//! and for `nix-instantiate`. Without them the evaluation tests are reported as *ignored* (never as
//! passed), and with `CI=true` `eval_tests_can_run_in_ci` fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const NIX_CONFIG: &str = "substituters =\nexperimental-features = nix-command flakes";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The nixpkgs lib directory `build.rs` found (`NIXPKGS_LIB` or `../shared/nixpkgs-lib`). Only
/// called from tests that are ignored without it.
fn nixpkgs_lib() -> PathBuf {
    let dir = option_env!("PERSISTCTL_NIXPKGS_LIB");
    PathBuf::from(dir.unwrap_or_else(|| panic!("build.rs found no nixpkgs lib: this test should be ignored")))
}

/// In CI the evaluation tests must run: ignoring them there would let the Nix side go untested.
#[test]
fn eval_tests_can_run_in_ci() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci || cfg!(nixpkgs_lib),
        "CI=true but build.rs found no nixpkgs lib or no nix-instantiate: set NIXPKGS_LIB to a directory \
         holding nixpkgs' lib/ (or provide ../shared/nixpkgs-lib) and install Nix; the evaluation tests were ignored"
    );
}

/// A Nix string literal for a path (paths here never hold `"`, `\` or `${`).
fn nix_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn lib_expr(lib: &Path) -> String {
    format!("(import {})", nix_path(&lib.join("lib")))
}

/// Runs `nix-instantiate --eval --strict --json -E <expr>`: the value, or stderr.
fn eval(expr: &str) -> Result<Value, String> {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", expr])
        .env("NIX_CONFIG", NIX_CONFIG)
        .current_dir(repo())
        .output()
        .map_err(|e| format!("Failed to run nix-instantiate: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("nix-instantiate printed no JSON: {e}"))
}

fn eval_ok(expr: &str) -> Value {
    eval(expr).unwrap_or_else(|stderr| panic!("evaluation failed:\n{expr}\n{stderr}"))
}

/// The config object `nix/render.nix` makes of a module (a Nix expression).
fn render(lib: &Path, configuration: &str) -> Result<Value, String> {
    eval(&format!(
        "import {} {{ lib = {}; configuration = {configuration}; }}",
        nix_path(&repo().join("nix/render.nix")),
        lib_expr(lib)
    ))
}

fn render_example(lib: &Path, host: &str) -> Value {
    let example = repo().join(format!("examples/{host}.nix"));
    render(lib, &nix_path(&example)).unwrap_or_else(|e| panic!("examples/{host}.nix does not render:\n{e}"))
}

/// The evaluated config of a miniature NixOS (tests/nix/fake-nixos.nix), narrowed by `select`
/// (a Nix function of `config`).
fn fake_nixos(lib: &Path, configuration: &str, select: &str) -> Value {
    eval_ok(&format!(
        "let config = import {} {{ lib = {}; configuration = {configuration}; }}; in ({select}) config",
        nix_path(&repo().join("tests/nix/fake-nixos.nix")),
        lib_expr(lib)
    ))
}

fn fixture(host: &str) -> PathBuf {
    repo().join(format!("tests/fixtures/rendered/{host}.json"))
}

fn service<'a>(config: &'a Value, name: &str) -> &'a Value {
    let service = &config["datasets"]["services"][name];
    assert!(service.is_object(), "no service {name} in {config:#}");
    service
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn forge_renders_the_seed_matrix_on_tank() {
    let lib = nixpkgs_lib();
    let config = render_example(&lib, "forge");
    assert_eq!(config["version"], 1);
    let datasets = &config["datasets"];
    assert_eq!(datasets["parentDataset"], "tank/persist");
    assert_eq!(datasets["parentMount"], "/persist");
    assert_eq!(datasets["createParent"], false);
    let names: Vec<&String> = datasets["services"].as_object().expect("services").keys().collect();
    assert_eq!(names, ["plex", "radarr", "sonarr"]);

    for (name, recordsize, snapshot) in [("sonarr", "16K", "true"), ("radarr", "16K", "true"), ("plex", "1M", "false")]
    {
        let s = service(&config, name);
        assert_eq!(s["recordsize"], recordsize, "{name}");
        assert_eq!(s["compression"], "lz4", "{name}");
        assert_eq!(s["properties"]["com.sun:auto-snapshot"], snapshot, "{name}");
        assert_eq!(s["owner"], name, "{name} runs as its own user");
        assert_eq!(s["group"], name, "{name}");
        assert!(s["mountpoint"].is_null(), "{name} mounts at <parentMount>/<name>");
    }
    assert_eq!(service(&config, "sonarr")["mode"], "0700", "the mode nixpkgs' own tmpfiles rule uses");
    assert_eq!(service(&config, "plex")["mode"], "0750");

    let preseed = &service(&config, "sonarr")["preseed"];
    assert_eq!(preseed["enable"], true);
    assert_eq!(strings(&preseed["sources"]), ["snapshot", "replica", "restic"]);
    assert_eq!(preseed["timeout"], 1800);
    assert_eq!(preseed["allowEmptyBootstrap"], false);
    assert_eq!(preseed["replica"]["dataset"], "backup/tank-replica/sonarr");
    let restic = &preseed["restic"];
    assert_eq!(restic["repository"], "/srv/restic/nas-primary", "taken from the backup job");
    assert_eq!(restic["passwordFile"], "/run/secrets/restic-password", "taken from the backup job");
    assert_eq!(strings(&restic["tags"]), ["sonarr", "media"], "taken from the backup job");
    assert_eq!(restic["path"], "/persist/var/lib/sonarr");
    assert!(service(&config, "radarr")["preseed"].is_null(), "no preseed unless enabled");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn luna_renders_home_assistant_on_the_boot_pool() {
    let lib = nixpkgs_lib();
    let config = render_example(&lib, "luna");
    assert_eq!(config["datasets"]["parentDataset"], "rpool/safe/persist");
    let names: Vec<&String> = config["datasets"]["services"].as_object().expect("services").keys().collect();
    assert_eq!(names, ["home-assistant"]);
    let hass = service(&config, "home-assistant");
    assert_eq!(hass["recordsize"], "16K");
    assert_eq!(hass["compression"], "lz4");
    assert_eq!(hass["properties"]["com.sun:auto-snapshot"], "true");
    assert_eq!(hass["owner"], "hass");
    assert_eq!(hass["group"], "hass");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn postgresql_preset_splits_data_and_wal() {
    let lib = nixpkgs_lib();
    let config = render(&lib, "{ modules.storage.datasets.enable = true; services.postgresql.enable = true; }")
        .unwrap_or_else(|e| panic!("{e}"));
    let data = service(&config, "postgres-data");
    assert_eq!(data["recordsize"], "8K");
    assert_eq!(data["compression"], "lz4");
    assert_eq!(data["properties"]["logbias"], "latency");
    assert_eq!(data["owner"], "postgres");
    assert_eq!(data["mode"], "0700", "initdb refuses a group- or world-readable data directory");
    let wal = service(&config, "postgres-wal");
    assert_eq!(wal["recordsize"], "128K");
    assert_eq!(wal["compression"], "off");
    assert_eq!(wal["properties"]["logbias"], "throughput");

    let without_wal = render(
        &lib,
        "{ modules.storage.datasets = { enable = true; presets.postgresql.separateWal = false; }; \
           services.postgresql.enable = true; }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(without_wal["datasets"]["services"].get("postgres-wal").is_none());
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn presets_follow_their_services_and_yield_to_the_host() {
    let lib = nixpkgs_lib();
    let nothing = render(&lib, "{ modules.storage.datasets.enable = true; }").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nothing["datasets"]["services"], serde_json::json!({}), "no service enabled, no dataset");

    let overridden = render(
        &lib,
        r#"{ modules.storage.datasets = { enable = true; services.sonarr = { recordsize = "64K"; mode = "0750"; properties."com.sun:auto-snapshot" = "false"; }; };
             services.sonarr = { enable = true; user = "media"; }; }"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sonarr = service(&overridden, "sonarr");
    assert_eq!(sonarr["recordsize"], "64K", "the host's value wins over the preset's");
    assert_eq!(sonarr["mode"], "0750");
    assert_eq!(sonarr["properties"]["com.sun:auto-snapshot"], "false");
    assert_eq!(sonarr["compression"], "lz4", "what the host does not set keeps the preset's value");
    assert_eq!(sonarr["owner"], "media", "the preset follows services.sonarr.user");

    let off = render(
        &lib,
        "{ modules.storage.datasets = { enable = true; presets.enable = false; }; services.sonarr.enable = true; }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(off["datasets"]["services"], serde_json::json!({}));
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn names_with_spaces_and_custom_mountpoints_render() {
    let lib = nixpkgs_lib();
    let config = render(
        &lib,
        r#"{ modules.storage.datasets = { enable = true; parentDataset = "tank/my persist"; parentMount = "/my persist/";
             services."my app" = { mountpoint = /srv/media; owner = "1000"; preseed = { enable = true; allowEmptyBootstrap = true; sources = [ ]; }; }; }; }"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let app = service(&config, "my app");
    assert_eq!(app["mountpoint"], "/srv/media", "a path value becomes a string, not a store path");
    assert_eq!(app["owner"], "1000");
    assert_eq!(strings(&app["preseed"]["sources"]), Vec::<&str>::new());
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn rendered_fixtures_are_current() {
    let lib = nixpkgs_lib();
    let mut hosts: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".nix").map(String::from))
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["db", "forge", "luna"]);
    for host in &hosts {
        let text = std::fs::read_to_string(fixture(host))
            .unwrap_or_else(|e| panic!("Failed to read {}: {e}", fixture(host).display()));
        let committed: Value = serde_json::from_str(&text).expect("fixture is JSON");
        assert_eq!(
            committed,
            render_example(&lib, host),
            "tests/fixtures/rendered/{host}.json is stale: run NIXPKGS_LIB=... tests/nix/update-fixtures.sh"
        );
    }
}

/// Each file in tests/nix/bad and what the error must say (the option's name, then why).
const BAD_CONFIGS: &[(&str, &[&str])] = &[
    ("compression", &["`modules.storage.datasets.services.app.compression'", "ZFS compression", "\"snappy\""]),
    ("compression-level", &["`modules.storage.datasets.services.app.compression'", "zstd-1..19", "\"zstd-20\""]),
    ("recordsize-15k", &["`modules.storage.datasets.services.app.recordsize'", "power of two", "\"15K\""]),
    ("recordsize-32m", &["`modules.storage.datasets.services.app.recordsize'", "512 to 16M", "\"32M\""]),
    ("mode-rwx", &["`modules.storage.datasets.services.app.mode'", "octal file mode", "\"rwx\""]),
    ("parent-dataset", &["`modules.storage.datasets.parentDataset'", "ZFS dataset name", "\"tank//persist\""]),
    ("parent-dataset-snapshot", &["`modules.storage.datasets.parentDataset'", "ZFS dataset name", "@today"]),
    ("parent-dataset-option", &["`modules.storage.datasets.parentDataset'", "starts with a letter", "\"--help\""]),
    (
        "parent-dataset-reserved-pool",
        &["`modules.storage.datasets.parentDataset'", "vdev keyword", "\"raidz2/persist\""],
    ),
    ("user-property-plus", &["modules.storage.datasets.services.app.properties.\"a+b:x\"", "`: . _ -`"]),
    ("property-value-spaces", &["modules.storage.datasets.services.app.properties.\"quota\"", "surrounding spaces"]),
    (
        "keylocation-without-encryption",
        &["modules.storage.datasets.services.app.properties.\"keylocation\"", "needs properties.encryption"],
    ),
    ("pbkdf2iters-too-few", &["modules.storage.datasets.services.app.properties.\"pbkdf2iters\"", "at least 100000"]),
    ("preseed-timeout-too-long", &["`modules.storage.datasets.services.app.preseed.timeout'", "604800 (7 days)"]),
    ("mountpoint-component-too-long", &["`modules.storage.datasets.services.app.mountpoint'", "at most 255"]),
    ("aside-name-too-long", &["modules.storage.datasets.services.sonarr", "moved-aside dataset"]),
    ("service-name", &["modules.storage.datasets.services.\"media/sonarr\"", "one dataset name component"]),
    ("relative-mountpoint", &["`modules.storage.datasets.services.app.mountpoint'", "absolute path"]),
    ("owner", &["`modules.storage.datasets.services.app.owner'", "user or group name"]),
    ("unknown-preset-field", &["The option `modules.storage.datasets.presets.sonarr.recordsize' does not exist"]),
    ("typo-option", &["The option `modules.storage.datasets.services.app.recordsze' does not exist", "Did you mean"]),
    ("typo-preseed-option", &["The option `modules.storage.datasets.services.app.preseed.sourcs' does not exist"]),
    ("unknown-property", &["modules.storage.datasets.services.app.properties.\"atim\"", "unknown ZFS property"]),
    (
        "property-value",
        &["modules.storage.datasets.services.app.properties.\"logbias\"", "not one of latency, throughput"],
    ),
    (
        "shorthand-in-properties",
        &[
            "modules.storage.datasets.services.app.properties.\"recordsize\"",
            "set modules.storage.datasets.services.app.recordsize instead",
        ],
    ),
    (
        "preseed-replica-without-dataset",
        &["modules.storage.datasets.services.app.preseed.replica.dataset", "sources lists \"replica\""],
    ),
    (
        "preseed-restic-without-password",
        &["modules.storage.datasets.services.app.preseed.restic.passwordFile", "must be set"],
    ),
    ("preseed-unknown-source", &["`modules.storage.datasets.services.app.preseed.sources", "\"tape\""]),
    (
        "shared-mountpoint",
        &[
            "modules.storage.datasets.services.b.mountpoint",
            "also the mountpoint of modules.storage.datasets.services.a",
        ],
    ),
    ("restic-tag", &["`modules.storage.datasets.services.app.backup.restic.tags", "restic tag", "\"a,b\""]),
    ("notifications-webhook-without-url", &["modules.notifications.backends.webhook.ops", "one of url and urlFile"]),
    ("notifications-template-without-body", &["modules.notifications.templates.disk-full", "set title and body"]),
    ("notifications-priority", &["`modules.notifications.templates.preseed-failure.priority'", "\"critical\""]),
    (
        "notifications-unit-template",
        &["modules.notifications.unitTemplates.\"restic-backups-sonarr.service\"", "no template \"backup-failure\""],
    ),
    ("notifications-without-storage", &["modules.notifications needs modules.storage.datasets.enable"]),
    ("notifications-ntfy-url", &["`modules.notifications.backends.ntfy.phone.url'", "http:// or https:// URL"]),
    ("property-dedup", &["modules.storage.datasets.services.app.properties.\"dedup\"", "\"edonr\" is not one of"]),
    (
        "preseed-barman-without-pitr",
        &[
            "modules.storage.datasets.services.app.preseed.sources",
            "lists \"barman\"",
            "modules.database.postgresql.pitr",
        ],
    ),
    ("pitr-without-destination", &["modules.database.postgresql.pitr: set s3Bucket", "or destination"]),
    ("pitr-two-destinations", &["modules.database.postgresql.pitr: set s3Bucket or destination, not both"]),
    (
        "pitr-destination-without-scheme",
        &["`modules.database.postgresql.pitr.destination'", "barman-cloud destination URL", "\"homelab-pitr/db\""],
    ),
    ("pitr-s3-bucket-with-scheme", &["`modules.database.postgresql.pitr.s3Bucket'", "without \"s3://\""]),
    ("pitr-environment-file-in-store", &["modules.database.postgresql.pitr.environmentFile", "is in the Nix store"]),
    ("pitr-password-file-in-store", &["modules.database.postgresql.pitr.passwordFile", "is in the Nix store"]),
    ("pitr-without-postgresql", &["modules.database.postgresql.pitr needs services.postgresql.enable = true"]),
    ("pitr-without-storage", &["modules.database.postgresql.pitr needs modules.storage.datasets.enable = true"]),
    ("pitr-preset-off", &["modules.database.postgresql.pitr needs modules.storage.datasets.presets.postgresql.enable"]),
    (
        "pitr-data-dir-elsewhere",
        &["services.postgresql.dataDir is /srv/pgdata", "not the postgres-data dataset's /persist/postgres-data"],
    ),
    ("pitr-retention", &["`modules.database.postgresql.pitr.retention'", "barman retention policy", "\"30 DAYS\""]),
    (
        "pitr-target-time-without-offset",
        &["`modules.database.postgresql.pitr.targetTime'", "RFC 3339 time with an offset"],
    ),
    ("pitr-server-name", &["`modules.database.postgresql.pitr.serverName'", "barman server name", "\"pg/main\""]),
    (
        "pitr-restic-on-postgres-data",
        &["modules.storage.datasets.services.postgres-data.backup.restic.enable", "backed up by barman-cloud"],
    ),
    ("pitr-wal-timeout", &["`modules.database.postgresql.pitr.walTimeout'", "from 1 to 86400 (1 day)"]),
    ("pitr-wal-level-minimal", &["services.postgresql.settings.wal_level is \"minimal\"", "\"replica\""]),
];

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn wrong_values_fail_evaluation_naming_the_option() {
    let lib = nixpkgs_lib();
    let mut failures = Vec::new();
    for (name, needles) in BAD_CONFIGS {
        let file = repo().join(format!("tests/nix/bad/{name}.nix"));
        let expr = format!(
            "import {} {{ lib = {}; configuration = {}; }}",
            nix_path(&repo().join("tests/nix/check-module.nix")),
            lib_expr(&lib),
            nix_path(&file)
        );
        match eval(&expr) {
            Ok(value) => failures.push(format!("{name}: evaluated to {value}")),
            Err(stderr) => {
                for needle in *needles {
                    if !stderr.contains(needle) {
                        failures.push(format!("{name}: the error does not say {needle:?}:\n{stderr}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_bad_config_is_checked() {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("tests/nix/bad"))
        .expect("tests/nix/bad")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".nix").map(String::from))
        .collect();
    files.sort();
    let mut listed: Vec<String> = BAD_CONFIGS.iter().map(|(name, _)| (*name).to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "tests/nix/bad and BAD_CONFIGS must list the same cases");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn the_lib_only_half_rejects_wrong_values_without_nixos() {
    let lib = nixpkgs_lib();
    let err = render(&lib, r#"{ modules.storage.datasets.services.app.recordsize = "15K"; }"#)
        .expect_err("15K must not render");
    assert!(err.contains("`modules.storage.datasets.services.app.recordsize'"), "{err}");
    let err = render(&lib, r#"{ modules.storage.datasets.services.app.properties.atim = "off"; }"#)
        .expect_err("a property typo must not render");
    assert!(err.contains("properties.\"atim\""), "{err}");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn nixos_wiring_orders_units_and_moves_data_dirs() {
    let lib = nixpkgs_lib();
    let forge = nix_path(&repo().join("examples/forge.nix"));
    let got = fake_nixos(
        &lib,
        &forge,
        "c: { inherit (c.systemd) services tmpfiles; inherit (c.system) activationScripts; \
             restic = c.services.restic.backups; etc = c.environment.etc; \
             dataDirs = { inherit (c.services.sonarr) dataDir; radarr = c.services.radarr.dataDir; plex = c.services.plex.dataDir; }; \
             json = c.system.build.persistctlConfig.env.json; check = c.system.build.persistctlConfig.script; }",
    );
    let units = &got["services"];

    let datasets = &units["zfs-service-datasets"];
    assert_eq!(strings(&datasets["after"]), ["zfs-import.target", "zfs-mount.service"]);
    assert_eq!(strings(&datasets["before"]), ["shutdown.target"]);
    assert_eq!(datasets["unitConfig"]["DefaultDependencies"], false, "no After=sysinit.target basic.target");
    assert_eq!(strings(&datasets["unitConfig"]["RequiresMountsFor"]), ["/persist"], "after a legacy parent mount");
    assert!(!strings(&datasets["restartTriggers"]).is_empty(), "restarted when the config changes");
    let exec = datasets["serviceConfig"]["ExecStart"].as_str().expect("ExecStart");
    assert!(exec.ends_with(" apply") && exec.contains("/bin/persistctl --config /nix/store/"), "{exec}");
    assert!(strings(&datasets["path"]).iter().any(|p| p.contains("zfs-user")), "PATH carries boot.zfs.package");

    for name in ["sonarr", "radarr", "plex"] {
        let unit = &units[name];
        assert!(strings(&unit["after"]).contains(&"zfs-service-datasets.service"), "{name}: {unit:#}");
        assert!(strings(&unit["wants"]).contains(&"zfs-service-datasets.service"), "{name}");
        assert_eq!(strings(&unit["unitConfig"]["RequiresMountsFor"]), [format!("/persist/{name}").as_str()]);
    }
    assert_eq!(got["dataDirs"]["dataDir"], "/persist/sonarr");
    assert_eq!(got["dataDirs"]["radarr"], "/persist/radarr");
    assert_eq!(got["dataDirs"]["plex"], "/persist/plex");

    // sonarr has preseed: it requires its restore and starts after it.
    assert!(strings(&units["sonarr"]["requires"]).contains(&"preseed@sonarr.service"));
    assert!(strings(&units["sonarr"]["after"]).contains(&"preseed@sonarr.service"));
    assert!(strings(&units["radarr"]["requires"]).is_empty());
    let preseed = &units["preseed@sonarr"];
    assert_eq!(preseed["serviceConfig"]["Type"], "oneshot");
    assert_eq!(preseed["serviceConfig"]["RemainAfterExit"], true);
    assert_eq!(preseed["serviceConfig"]["TimeoutStartSec"], 1800 + 60);
    assert!(
        preseed["serviceConfig"]["ExecStart"].as_str().expect("ExecStart").ends_with("/bin/persistctl preseed sonarr")
    );
    assert_eq!(strings(&preseed["before"]), ["sonarr.service"]);
    assert!(strings(&preseed["after"]).contains(&"zfs-service-datasets.service"));
    assert!(strings(&preseed["after"]).contains(&"zfs-mount.service"));
    assert_eq!(preseed["restartIfChanged"], false, "a restart would restart sonarr");
    assert!(!strings(&preseed["after"]).contains(&"network-online.target"), "the repository is local");

    let script = &got["activationScripts"]["zfs-service-datasets"];
    assert_eq!(script["supportsDryActivation"], true);
    let text = script["text"].as_str().expect("text");
    assert!(text.contains("dry-activate)") && text.contains(" plan ||"), "{text}");
    assert!(text.contains(" --zfs-timeout 120 apply || rc=$?") && text.contains("WARNING"), "{text}");

    assert_eq!(
        strings(&got["tmpfiles"]["rules"]),
        [
            "d '/persist/plex' 0750 plex plex - -",
            "d '/persist/radarr' 0700 radarr radarr - -",
            "d '/persist/sonarr' 0700 sonarr sonarr - -",
        ]
    );

    let restic = &got["restic"]["sonarr"];
    assert_eq!(strings(&restic["paths"]), ["/persist/sonarr"]);
    assert_eq!(restic["repository"], "/srv/restic/nas-primary");
    assert_eq!(strings(&restic["extraBackupArgs"]), ["--tag=sonarr", "--tag=media"]);
    assert_eq!(strings(&units["restic-backups-sonarr"]["unitConfig"]["RequiresMountsFor"]), ["/persist/sonarr"]);

    // The file the binary reads is exactly what render.nix makes, checked at build time.
    let json: Value = serde_json::from_str(got["json"].as_str().expect("json")).expect("JSON");
    assert_eq!(json, render_example(&lib, "forge"));
    assert!(got["check"].as_str().expect("script").contains("/bin/persistctl check-config \"$out\""));
    let linked = got["etc"]["persistctl/config.json"]["source"].as_str().expect("a store path");
    assert!(linked.ends_with("-persistctl-config.json"), "{linked}");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn nixos_wiring_for_home_assistant_postgresql_and_odd_names() {
    let lib = nixpkgs_lib();
    let got = fake_nixos(
        &lib,
        r#"[ (import ./examples/luna.nix) {
             services.postgresql.enable = true;
             modules.storage.datasets.notifyCommand = "echo done";
             modules.storage.datasets.services."my app" = {
               usedBy = [ "app" ];
               preseed = { enable = true; restic = { repository = "s3:s3.example/bucket"; passwordFile = "/run/p"; }; };
             };
           } ]"#,
        "c: { inherit (c.systemd) services; configDir = c.services.home-assistant.configDir;
             pgData = c.services.postgresql.dataDir; initdb = c.services.postgresql.initdbArgs; }",
    );
    let units = &got["services"];
    assert_eq!(got["configDir"], "/persist/home-assistant");
    assert_eq!(got["pgData"], "/persist/postgres-data");
    assert_eq!(strings(&got["initdb"]), ["--waldir=/persist/postgres-wal/pg_wal"]);
    assert!(strings(&units["home-assistant"]["after"]).contains(&"zfs-service-datasets.service"));
    let pg = &units["postgresql"];
    assert_eq!(strings(&pg["after"]), ["zfs-service-datasets.service"], "once, though it uses two datasets");
    assert_eq!(strings(&pg["unitConfig"]["RequiresMountsFor"]), ["/persist/postgres-data", "/persist/postgres-wal"]);
    assert_eq!(strings(&pg["serviceConfig"]["ReadWritePaths"]), ["/persist/postgres-wal"]);

    // A space is escaped in the unit name and quoted in path lists.
    let app = &units["app"];
    assert_eq!(strings(&app["requires"]), ["preseed@my\\x20app.service"]);
    assert_eq!(strings(&app["unitConfig"]["RequiresMountsFor"]), ["\"/persist/my app\""]);
    let preseed = &units["preseed@my\\x20app"];
    assert!(strings(&preseed["after"]).contains(&"network-online.target"), "an S3 repository needs the network");
    let exec = preseed["serviceConfig"]["ExecStart"].as_str().expect("ExecStart");
    assert!(exec.starts_with("/nix/store/") && exec.contains("preseed-my"), "the notify wrapper: {exec}");
}

/// `persistctl --config <the config> --zfs-timeout <seconds>` as the fake NixOS' store paths spell it.
fn persistctl_argv(zfs_timeout: u32) -> String {
    format!(
        "/nix/store/00000000000000000000000000000000-persistctl-0.1.0/bin/persistctl \
         --config /nix/store/00000000000000000000000000000000-persistctl-config.json --zfs-timeout {zfs_timeout}"
    )
}

/// The guard `ExecStartPre=` line: `+` (full privileges), then `persistctl ... guard <args>`.
fn guard_line(args: &str) -> String {
    format!("+{} guard {args}", persistctl_argv(120))
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn used_by_units_and_restic_jobs_are_guarded_before_anything_else_runs() {
    let lib = nixpkgs_lib();
    let got = fake_nixos(
        &lib,
        r#"[ (import ./examples/forge.nix) {
             services.postgresql.enable = true;
             # What nixpkgs' preStart becomes (postgresql's initdb): the guard must come first.
             systemd.services.postgresql.serviceConfig.ExecStartPre = [ "/nix/store/x-unit-script-postgresql-pre-start" ];
             modules.storage.datasets.services."my app".usedBy = [ "app" ];
           } ]"#,
        "c: builtins.mapAttrs (_: u: { mountAssert = u.unitConfig.AssertPathIsMountPoint or null; \
                                       pre = u.serviceConfig.ExecStartPre or null; \
                                       timeout = u.serviceConfig.TimeoutStartSec or null; }) c.systemd.services",
    );
    // A preset passes nixpkgs' old data directory: the service refuses an empty dataset while
    // its data is still there.
    assert_eq!(got["sonarr"]["mountAssert"], serde_json::json!(["/persist/sonarr"]));
    assert_eq!(
        strings(&got["sonarr"]["pre"]),
        [guard_line("sonarr --old-path sonarr=/var/lib/sonarr/.config/NzbDrone").as_str()]
    );
    assert_eq!(
        strings(&got["radarr"]["pre"]),
        [guard_line("radarr --old-path radarr=/var/lib/radarr/.config/Radarr").as_str()]
    );
    assert_eq!(strings(&got["plex"]["pre"]), [guard_line("plex --old-path plex=/var/lib/plex").as_str()]);
    // Two datasets, one guard; the WAL had no directory of its own before.
    assert_eq!(
        got["postgresql"]["mountAssert"],
        serde_json::json!(["/persist/postgres-data", "/persist/postgres-wal"])
    );
    assert_eq!(
        strings(&got["postgresql"]["pre"]),
        [
            guard_line("postgres-data postgres-wal --old-path postgres-data=/var/lib/postgresql/17").as_str(),
            "/nix/store/x-unit-script-postgresql-pre-start",
        ],
        "the guard runs before initdb"
    );
    // Not a preset: no old path; a name with a space is one quoted argument.
    assert_eq!(got["app"]["mountAssert"], serde_json::json!(["/persist/my app"]), "one path per assertion, unquoted");
    assert_eq!(strings(&got["app"]["pre"]), [guard_line("\"my app\"").as_str()]);

    // The restic job of sonarr: the same guard, so an empty directory is never backed up (and
    // pruned against) in place of the dataset; and a finite start timeout (6 h by default).
    let job = &got["restic-backups-sonarr"];
    assert_eq!(job["mountAssert"], serde_json::json!(["/persist/sonarr"]));
    assert_eq!(
        strings(&job["pre"]),
        [guard_line("sonarr --old-path sonarr=/var/lib/sonarr/.config/NzbDrone").as_str()]
    );
    assert_eq!(job["timeout"], 6 * 3600);

    // The preseed unit restores into the dataset before the guard looks at it: not guarded itself.
    assert!(got["preseed@sonarr"]["pre"].is_null(), "{:#}", got["preseed@sonarr"]);
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn old_data_path_follows_the_preset_and_yields_to_the_host() {
    let lib = nixpkgs_lib();
    let got = fake_nixos(
        &lib,
        r#"{ modules.storage.datasets = { enable = true; services.plex.oldDataPath = "/srv/old-plex"; };
             services.sonarr = { enable = true; dataDir = "/srv/sonarr"; };
             services.radarr.enable = true;
             services.plex.enable = true;
             services.home-assistant.enable = true; }"#,
        "c: { old = builtins.mapAttrs (_: s: s.oldDataPath) c.modules.storage.datasets.services;
               sonarr = c.systemd.services.sonarr.serviceConfig.ExecStartPre;
               plex = c.systemd.services.plex.serviceConfig.ExecStartPre; }",
    );
    assert_eq!(
        got["old"],
        serde_json::json!({ "sonarr": null, "radarr": "/var/lib/radarr/.config/Radarr", "plex": "/srv/old-plex",
                            "home-assistant": "/var/lib/hass" }),
        "a host that keeps its own data directory gets no old path; an explicit one wins"
    );
    assert_eq!(strings(&got["sonarr"]), [guard_line("sonarr").as_str()]);
    assert_eq!(strings(&got["plex"]), [guard_line("plex --old-path plex=/srv/old-plex").as_str()]);
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn boot_unit_runs_after_zfs_mount_with_a_finite_timeout() {
    let lib = nixpkgs_lib();
    let select = "c: c.systemd.services.zfs-service-datasets";
    let unit = fake_nixos(&lib, "{ modules.storage.datasets.enable = true; }", select);
    // After zfs-mount.service: a non-legacy parent (canmount=on) is mounted by it.
    assert_eq!(strings(&unit["after"]), ["zfs-import.target", "zfs-mount.service"]);
    assert_eq!(strings(&unit["wants"]), ["zfs-import.target"]);
    assert_eq!(strings(&unit["before"]), ["shutdown.target"], "not before zfs-mount.service or local-fs.target");
    assert_eq!(strings(&unit["conflicts"]), ["shutdown.target"]);
    assert_eq!(strings(&unit["wantedBy"]), ["multi-user.target"]);
    assert_eq!(unit["unitConfig"]["DefaultDependencies"], false);
    assert_eq!(strings(&unit["unitConfig"]["RequiresMountsFor"]), ["/persist"], "a legacy parent is mounted first");
    assert_eq!(unit["serviceConfig"]["TimeoutStartSec"], 900);
    assert_eq!(unit["serviceConfig"]["ExecStart"], format!("{} apply", persistctl_argv(120)));

    let tuned = fake_nixos(
        &lib,
        "{ modules.storage.datasets = { enable = true; applyTimeout = 1800; zfsTimeout = 30; }; }",
        select,
    );
    assert_eq!(tuned["serviceConfig"]["TimeoutStartSec"], 1800);
    assert_eq!(tuned["serviceConfig"]["ExecStart"], format!("{} apply", persistctl_argv(30)));
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn boot_unit_waits_for_the_unit_that_creates_users() {
    let lib = nixpkgs_lib();
    let after = |configuration: &str| {
        let got = fake_nixos(
            &lib,
            &format!("[ {{ modules.storage.datasets.enable = true; }} {configuration} ]"),
            "c: c.systemd.services.zfs-service-datasets.after",
        );
        strings(&got).into_iter().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(after("{ }"), ["zfs-import.target", "zfs-mount.service"]);
    assert_eq!(
        after("{ services.userborn.enable = true; }"),
        ["zfs-import.target", "zfs-mount.service", "userborn.service"]
    );
    assert_eq!(
        after("{ systemd.sysusers.enable = true; }"),
        ["zfs-import.target", "zfs-mount.service", "systemd-sysusers.service"]
    );
    // The activation script's users snippet, where NixOS still has one.
    let deps = fake_nixos(
        &lib,
        r#"[ { modules.storage.datasets.enable = true; system.activationScripts.users.text = "true"; } ]"#,
        "c: c.system.activationScripts.zfs-service-datasets.deps",
    );
    assert_eq!(strings(&deps), ["users"]);
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn activation_runs_persistctl_under_a_timeout_and_never_fails_the_switch() {
    let lib = nixpkgs_lib();
    let got = fake_nixos(
        &lib,
        "{ modules.storage.datasets = { enable = true; applyTimeout = 600; }; }",
        "c: c.system.activationScripts.zfs-service-datasets.text",
    );
    let text = got.as_str().expect("text");
    let timeout = "/nix/store/00000000000000000000000000000000-coreutils-9.8/bin/timeout --kill-after=10 600";
    for call in ["plan", "apply"] {
        let line = format!("{timeout} {} {call} || rc=$?", persistctl_argv(120));
        assert!(text.contains(&line), "{line:?} not in\n{text}");
    }
    assert_eq!(text.matches("/bin/persistctl").count(), 2, "no unbounded call: {text}");
    assert!(text.contains("124 | 137)") && text.contains("did not finish within 600 s"), "{text}");
    assert!(text.trim_end().ends_with("true\n)"), "the snippet always succeeds: {text}");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn every_generated_oneshot_has_a_finite_start_timeout() {
    let lib = nixpkgs_lib();
    let l = lib_expr(&lib);
    let configuration = format!(
        r#"[ ./nix/modules/replication ({stubs}) (import ./examples/forge.nix) {{
             services.postgresql.enable = true;
             modules.database.postgresql.pitr = {{ enable = true; s3Bucket = "pitr/forge"; retention = "REDUNDANCY 3"; }};
             modules.notifications = {{ enable = true; backends.ntfy.phone = {{ url = "https://ntfy.sh"; topic = "t"; }}; }};
             modules.replication.zfs = {{ enable = true; syncoid = {{ enable = true; destination = "backup/replica"; }}; }};
           }} ]"#,
        stubs = replication_stubs(&l)
    );
    // Our oneshots, and nixpkgs' restic jobs (oneshots there; the fake NixOS has no Type for them).
    let got = fake_nixos(
        &lib,
        &configuration,
        &format!(
            r#"c: builtins.mapAttrs (_: u: u.serviceConfig.TimeoutStartSec or null)
                 ({l}.filterAttrs (n: u: (u.serviceConfig.Type or null) == "oneshot" || {l}.hasPrefix "restic-backups-" n)
                   c.systemd.services)"#
        ),
    );
    let units = got.as_object().expect("units");
    let mut names: Vec<&str> = units.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "notify@",
            "persistctl-status",
            "persistctl-status-deadman",
            "postgresql-base-backup",
            "postgresql-base-backup-after-restore",
            "postgresql-retention",
            "preseed@postgres-data",
            "preseed@sonarr",
            "restic-backups-sonarr",
            "zfs-service-datasets"
        ]
    );
    for (name, timeout) in units {
        assert!(timeout.as_u64().is_some_and(|t| t > 0), "{name}: TimeoutStartSec = {timeout}");
    }
    assert_eq!(got["persistctl-status"], 600);
    assert_eq!(got["persistctl-status-deadman"], 60);
    assert_eq!(got["postgresql-base-backup"], 6 * 3600 + 60);
    assert_eq!(got["postgresql-retention"], 3600 + 60);
    assert_eq!(got["preseed@postgres-data"], 6 * 3600 + 60);
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn mk_preseed_service_makes_a_preseed_unit() {
    let lib = nixpkgs_lib();
    let got = fake_nixos(
        &lib,
        &format!(
            r#"[ {{ modules.storage.datasets.enable = true; }}
                 ((import {} {{ lib = {}; }}).mkPreseedService {{
                   serviceName = "paperless";
                   restic = {{ repository = "/srv/restic/nas"; passwordFile = "/run/secrets/restic"; }};
                   timeout = 600;
                 }}) ]"#,
            nix_path(&repo().join("nix/lib")),
            lib_expr(&lib)
        ),
        r#"c: { unit = c.systemd.services."preseed@paperless"; service = c.systemd.services.paperless;
               json = builtins.fromJSON c.system.build.persistctlConfig.env.json; }"#,
    );
    assert_eq!(got["unit"]["serviceConfig"]["TimeoutStartSec"], 660);
    assert_eq!(strings(&got["service"]["requires"]), ["preseed@paperless.service"]);
    let preseed = &got["json"]["datasets"]["services"]["paperless"]["preseed"];
    assert_eq!(strings(&preseed["sources"]), ["snapshot", "restic"]);
    assert_eq!(strings(&preseed["restic"]["tags"]), ["paperless"]);
}

fn nix_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !matches!(name.to_str(), Some("target" | ".git" | "result")) {
                nix_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "nix") {
            found.push(path);
        }
    }
}

#[test]
#[cfg_attr(not(nix_instantiate), ignore = "nix-instantiate not found: install Nix")]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    files.sort();
    for required in ["flake.nix", "default.nix", "nix/package.nix", "nix/render.nix", "nix/tests/first-boot.nix"] {
        assert!(files.contains(&repo().join(required)), "{required} is missing");
    }
    let mut failures = Vec::new();
    for file in &files {
        let out = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(file)
            .env("NIX_CONFIG", NIX_CONFIG)
            .output()
            .expect("nix-instantiate runs");
        if !out.status.success() {
            failures.push(format!("{}:\n{}", file.display(), String::from_utf8_lossy(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("parsed {} .nix files", files.len());
}

#[test]
fn flake_lock_pins_nixpkgs_25_11() {
    let text = std::fs::read_to_string(repo().join("flake.lock")).expect("flake.lock");
    let lock: Value = serde_json::from_str(&text).expect("flake.lock is JSON");
    assert_eq!(lock["version"], 7);
    assert_eq!(lock["root"], "root");
    assert_eq!(lock["nodes"]["root"]["inputs"]["nixpkgs"], "nixpkgs");
    let locked = &lock["nodes"]["nixpkgs"]["locked"];
    assert_eq!(locked["type"], "github");
    assert_eq!(locked["owner"], "NixOS");
    assert_eq!(locked["rev"], "687f05a9184cad4eaf905c48b63649e3a86f5433");
    assert!(locked["narHash"].as_str().is_some_and(|h| h.starts_with("sha256-") && h.len() == 51), "{locked}");
    assert_eq!(lock["nodes"]["nixpkgs"]["original"]["ref"], "nixos-25.11");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn flake_outputs_have_the_promised_shape() {
    let lib = nixpkgs_lib();
    // nixpkgs itself cannot be fetched here: a stand-in with the real lib and inert packages.
    let got = eval_ok(&format!(
        r#"let
             lib = {lib};
             drv = name: {{ type = "derivation"; inherit name; outPath = "/nix/store/x-${{name}}"; }};
             pkgs = system: {{
               stdenv.hostPlatform.system = system;
               callPackage = _: _: drv "persistctl";
               testers.runNixOSTest = t: drv t.name;
               runCommand = name: _: _: drv name;
               mkShell = _: drv "shell";
               nixfmt-tree = drv "nixfmt-tree";
             }};
             nixpkgs = {{ outPath = "/nixpkgs"; inherit lib; legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] pkgs; }};
             self = (import ./flake.nix).outputs {{ inherit self nixpkgs; }};
           in {{
             top = builtins.attrNames self;
             packages = lib.mapAttrs (_: builtins.attrNames) self.packages;
             modules = lib.mapAttrs (_: m: builtins.isAttrs m) self.nixosModules;
             overlay = builtins.isFunction self.overlays.default;
             checks = builtins.attrNames self.checks.x86_64-linux;
             fixturesCurrent = self.checks.x86_64-linux.rendered-fixtures.name;
             badConfigsFail = self.checks.x86_64-linux.bad-configs-fail.name;
             lib = builtins.attrNames self.lib;
           }}"#,
        lib = lib_expr(&lib)
    ));
    assert_eq!(
        strings(&got["top"]),
        ["checks", "devShells", "formatter", "lib", "nixosModules", "overlays", "packages"]
    );
    for system in ["x86_64-linux", "aarch64-linux"] {
        assert_eq!(strings(&got["packages"][system]), ["default", "persistctl"]);
    }
    assert_eq!(
        got["modules"],
        serde_json::json!({ "default": true, "storage-datasets": true, "notifications": true, "replication-zfs": true,
                            "postgresql-pitr": true }),
        "attrsets, not paths"
    );
    assert_eq!(got["overlay"], true);
    for check in [
        "package",
        "eval-forge",
        "eval-luna",
        "eval-db",
        "rendered-fixtures",
        "bad-configs-fail",
        "vm-first-boot",
        "vm-specialisation-switch",
        "vm-dry-activate",
        "vm-reboot",
    ] {
        assert!(strings(&got["checks"]).contains(&check), "missing check {check}");
    }
    // Their assertions ran: the fixtures are current and every bad config fails, in Nix too.
    assert_eq!(got["fixturesCurrent"], "persistctl-rendered-fixtures");
    assert_eq!(got["badConfigsFail"], "persistctl-bad-configs-fail");
    assert_eq!(strings(&got["lib"]), ["mkPreseedService", "renderConfig", "types"]);
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn options_doc_is_current() {
    let lib = nixpkgs_lib();
    let generated =
        eval_ok(&format!("import {} {{ lib = {}; }}", nix_path(&repo().join("nix/docs.nix")), lib_expr(&lib)));
    let generated = generated.as_str().expect("nix/docs.nix returns a string");
    let committed = std::fs::read_to_string(repo().join("docs/options.md")).expect("docs/options.md");
    assert!(committed == generated, "docs/options.md is out of date: run NIXPKGS_LIB=... tests/nix/gen-options-doc.sh");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn every_option_has_a_description_and_an_example() {
    let lib = nixpkgs_lib();
    let got = eval_ok(&format!(
        r#"let
             lib = {lib};
             eval = lib.evalModules {{ modules = [ ./nix/modules/storage-datasets/options.nix ./nix/modules/storage-datasets/presets.nix ./nix/lib/nixos-stubs.nix ]; }};
             options = builtins.filter (o: lib.take 3 o.loc == [ "modules" "storage" "datasets" ] && !o.internal) (lib.optionAttrSetToDocList eval.options);
           in {{
             count = builtins.length options;
             undocumented = map (o: o.name) (builtins.filter (o: o.description == null || o.description == "" || !(o ? example)) options);
           }}"#,
        lib = lib_expr(&lib)
    ));
    assert!(got["count"].as_u64().is_some_and(|n| n > 50), "{got}");
    assert_eq!(strings(&got["undocumented"]), Vec::<&str>::new(), "options without a description or an example");
}

#[test]
fn rendered_fixtures_pass_check_config() {
    let bin = env!("CARGO_BIN_EXE_persistctl");
    for host in ["db", "forge", "luna"] {
        let out = Command::new(bin).arg("check-config").arg(fixture(host)).output().expect("persistctl runs");
        assert!(
            out.status.success(),
            "persistctl check-config rejects tests/fixtures/rendered/{host}.json:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A host with two backends, a template override and a new template, as `nix/render.nix` makes it.
const NOTIFYING_HOST: &str = r#"{
  modules.storage.datasets.enable = true;
  modules.notifications = {
    enable = true;
    attempts = 4;
    backends.ntfy.phone = { url = "https://ntfy.sh"; topic = "homelab"; tokenFile = "/run/secrets/ntfy-token"; };
    backends.email.admin = { to = [ "admin@example.org" ]; minPriority = "high"; };
    templates.preseed-skipped.enable = false;
    templates.disk-full = { priority = "urgent"; title = "Pool \${pool} full"; body = "\${pct}% used"; };
    onFailure = [ "sanoid" ];
  };
}"#;

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn notifications_render_into_the_config_and_pass_check_config() {
    let lib = nixpkgs_lib();
    let config = render(&lib, NOTIFYING_HOST).unwrap_or_else(|e| panic!("{e}"));
    let n = &config["notifications"];
    assert_eq!(n["attempts"], 4);
    assert_eq!(n["timeout"], 10);
    assert_eq!(
        n["backends"]["ntfy"]["phone"],
        serde_json::json!({"enable": true, "minPriority": "min", "url": "https://ntfy.sh", "topic": "homelab",
                           "tokenFile": "/run/secrets/ntfy-token"})
    );
    assert_eq!(n["backends"]["email"]["admin"]["sendmail"], "/run/wrappers/bin/sendmail");
    assert_eq!(n["templates"]["disk-full"]["title"], "Pool ${pool} full", "written for persistctl, not interpolated");
    assert_eq!(n["templates"]["preseed-skipped"]["enable"], false);
    assert_eq!(n["unitTemplates"]["sanoid.service"], "sanoid-failure");

    // The binary reads what the module writes.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.json");
    std::fs::write(&file, config.to_string()).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl")).arg("check-config").arg(&file).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl"))
        .args(["--config"])
        .arg(&file)
        .args(["notify", "--dry-run", "disk-full", "--var", "pool=tank", "--var", "pct=95"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Pool tank full") && stdout.contains("ntfy/phone, email/admin"), "{stdout}");

    let without = render(&lib, "{ modules.storage.datasets.enable = true; }").unwrap_or_else(|e| panic!("{e}"));
    assert!(without.get("notifications").is_none(), "no key unless modules.notifications.enable");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn nixos_wiring_makes_a_notify_template_unit_and_on_failure_hooks() {
    let lib = nixpkgs_lib();
    let got = fake_nixos(
        &lib,
        &format!("[ ({NOTIFYING_HOST}) {{ systemd.services.sanoid.onFailure = [ \"mail@%n.service\" ]; }} ]"),
        r#"c: { notify = c.systemd.services."notify@"; sanoid = c.systemd.services.sanoid; warnings = c.warnings;
               json = builtins.fromJSON c.system.build.persistctlConfig.env.json; }"#,
    );
    let unit = &got["notify"];
    assert_eq!(unit["serviceConfig"]["Type"], "oneshot");
    let exec = unit["serviceConfig"]["ExecStart"].as_str().expect("ExecStart");
    assert!(
        exec.contains("/bin/persistctl --config /nix/store/") && exec.ends_with("-persistctl-config.json notify %i"),
        "{exec}"
    );
    // 4 attempts of 10 s, pauses of 2 + 4 + 8 s, journalctl and slack.
    assert_eq!(unit["serviceConfig"]["TimeoutStartSec"], 4 * 10 + 2 + 4 + 8 + 40);
    assert!(strings(&unit["path"]).iter().any(|p| p.contains("systemd")), "journalctl for errorMessage");
    assert!(unit.get("onFailure").is_none_or(|v| strings(v).is_empty()), "never notifies about itself");
    assert_eq!(strings(&got["sanoid"]["onFailure"]), ["mail@%n.service", "notify@%n.service"]);
    assert_eq!(strings(&got["warnings"]), Vec::<&str>::new());
    assert_eq!(got["json"]["notifications"]["backends"]["ntfy"]["phone"]["topic"], "homelab");

    let lonely = fake_nixos(
        &lib,
        "{ modules.storage.datasets.enable = true; modules.notifications.enable = true; }",
        "c: c.warnings",
    );
    assert!(strings(&lonely).iter().any(|w| w.contains("without an enabled backend")), "{lonely}");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn every_notifications_option_has_a_description_and_an_example() {
    let lib = nixpkgs_lib();
    let got = eval_ok(&format!(
        r#"let
             lib = {lib};
             eval = lib.evalModules {{ modules = [ ./nix/modules/notifications/options.nix ]; }};
             options = builtins.filter (o: lib.take 2 o.loc == [ "modules" "notifications" ] && !o.internal) (lib.optionAttrSetToDocList eval.options);
           in {{
             count = builtins.length options;
             undocumented = map (o: o.name) (builtins.filter (o: o.description == null || o.description == "" || !(o ? example)) options);
           }}"#,
        lib = lib_expr(&lib)
    ));
    assert!(got["count"].as_u64().is_some_and(|n| n > 30), "{got}");
    assert_eq!(strings(&got["undocumented"]), Vec::<&str>::new(), "options without a description or an example");
}

// ---- modules.replication.zfs -------------------------------------------------------------------------

/// What nix/modules/replication/render.nix makes of a configuration (a Nix expression).
fn render_replication(lib: &Path, configuration: &str) -> Result<Value, String> {
    eval(&format!(
        "import {} {{ lib = {}; configuration = {configuration}; }}",
        nix_path(&repo().join("nix/modules/replication/render.nix")),
        lib_expr(lib)
    ))
}

fn render_replication_ok(lib: &Path, configuration: &str) -> Value {
    render_replication(lib, configuration).unwrap_or_else(|e| panic!("does not render:\n{configuration}\n{e}"))
}

const STORAGE: &str = r#"modules.storage.datasets = {
      enable = true;
      parentDataset = "tank/persist";
      services.sonarr.properties."com.sun:auto-snapshot" = "true";
      services.radarr.properties."com.sun:auto-snapshot" = "false";
      services."my app".properties."com.sun:auto-snapshot" = "true";
      services.plex = { };
    };"#;

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn replication_fixtures_are_current() {
    let lib = nixpkgs_lib();
    let got = render_replication_ok(&lib, &nix_path(&repo().join("tests/nix/replication-vm.nix")));
    let dir = repo().join("tests/fixtures/replication");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("Failed to read fixture {name}: {e}"))
    };
    let stale = "is stale: run NIXPKGS_LIB=... tests/nix/update-replication-fixtures.sh";
    assert_eq!(got["sanoidConf"].as_str(), Some(read("sanoid.conf").as_str()), "sanoid.conf {stale}");
    let config: Value = serde_json::from_str(&read("config.json")).expect("config.json is JSON");
    assert_eq!(got["config"], config, "config.json {stale}");
    let syncoid: Value = serde_json::from_str(&read("syncoid.json")).expect("syncoid.json is JSON");
    assert_eq!(got["syncoid"], syncoid, "syncoid.json {stale}");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn sanoid_gets_the_production_template_for_every_auto_snapshot_dataset() {
    let lib = nixpkgs_lib();
    let got = render_replication_ok(&lib, &format!("{{ {STORAGE} modules.replication.zfs.enable = true; }}"));
    let datasets = got["sanoid"]["datasets"].as_object().expect("datasets");
    let mut names: Vec<&str> = datasets.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["tank/persist/my app", "tank/persist/sonarr"], "only auto-snapshot = true");
    assert_eq!(
        got["sanoid"]["datasets"]["tank/persist/sonarr"],
        serde_json::json!({ "use_template": ["production"], "recursive": false, "process_children_only": false,
                            "hourly": null, "daily": null, "monthly": null, "yearly": null,
                            "autosnap": null, "autoprune": null })
    );
    let templates = &got["sanoid"]["templates"];
    assert_eq!(
        templates["production"],
        serde_json::json!({ "hourly": 36, "daily": 30, "monthly": 3, "yearly": 0, "autosnap": true, "autoprune": true })
    );
    assert_eq!(templates["backup"]["autosnap"], false);
    assert_eq!(templates["backup"]["autoprune"], true);
    let conf = got["sanoidConf"].as_str().expect("sanoidConf");
    assert!(
        conf.contains("[tank/persist/my app]\nprocess_children_only=false\nrecursive=false\nuse_template=production\n"),
        "{conf}"
    );
    assert!(
        conf.contains(
            "[template_production]\nautoprune=true\nautosnap=true\ndaily=30\nhourly=36\nmonthly=3\nyearly=0\n"
        ),
        "{conf}"
    );
    assert_eq!(got["syncoid"]["commands"], serde_json::json!({}), "syncoid is off by default");
    assert!(got["config"]["monitoring"]["replication"].as_object().is_some_and(serde_json::Map::is_empty));
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn explicit_sanoid_settings_win_and_one_retention_keeps_the_others() {
    let lib = nixpkgs_lib();
    let got = render_replication_ok(
        &lib,
        &format!(
            r#"{{ {STORAGE}
              modules.replication.zfs = {{
                enable = true;
                sanoid.templates.production.hourly = 48;
                sanoid.templates.media = {{ daily = 7; autosnap = true; }};
                sanoid.datasets."tank/persist/sonarr" = {{ useTemplate = [ "media" ]; daily = 3; }};
                sanoid.datasets."tank/persist" = {{ useTemplate = [ "production" ]; recursive = "zfs"; processChildrenOnly = true; }};
              }};
            }}"#
        ),
    );
    let t = &got["sanoid"]["templates"];
    assert_eq!((t["production"]["hourly"].as_u64(), t["production"]["daily"].as_u64()), (Some(48), Some(30)));
    assert_eq!(t["media"], serde_json::json!({ "daily": 7, "autosnap": true }));
    let d = &got["sanoid"]["datasets"];
    assert_eq!(d["tank/persist/sonarr"]["use_template"], serde_json::json!(["media"]));
    assert_eq!(d["tank/persist/sonarr"]["daily"], 3);
    assert_eq!(d["tank/persist"]["recursive"], "zfs");
    let conf = got["sanoidConf"].as_str().unwrap();
    assert!(
        conf.contains("[tank/persist]\nprocess_children_only=true\nrecursive=zfs\nuse_template=production\n"),
        "{conf}"
    );
    assert!(conf.contains("[template_media]\nautosnap=true\ndaily=7\n\n"), "{conf}");

    let err = render_replication(
        &lib,
        &format!(r#"{{ {STORAGE} modules.replication.zfs = {{ enable = true; sanoid.autoTemplate = "prod"; }}; }}"#),
    )
    .expect_err("an unknown template must fail");
    assert!(err.contains(r#"sanoid.datasets."tank/persist/sonarr".useTemplate: no template "prod""#), "{err}");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn syncoid_commands_and_monitoring_targets_for_local_and_remote_destinations() {
    let lib = nixpkgs_lib();
    // The seed's 4.3 example: one dataset, received as the destination itself; children follow.
    let local = render_replication_ok(
        &lib,
        &format!(
            r#"{{ {STORAGE}
              modules.replication.zfs = {{ enable = true; syncoid = {{ enable = true; destination = "backup-pool/tank-replica"; }}; }};
              modules.storage.datasets.services.sonarr.backup.restic = {{
                enable = true; repository = "/srv/restic"; passwordFile = "/run/secrets/restic"; }};
            }}"#
        ),
    );
    assert_eq!(
        local["syncoid"]["commands"],
        serde_json::json!({ "tank/persist": { "source": "tank/persist", "target": "backup-pool/tank-replica", "recursive": true } })
    );
    let m = &local["config"]["monitoring"];
    assert_eq!(
        m["replication"]["my app"],
        serde_json::json!({ "dataset": "backup-pool/tank-replica/my app", "host": null, "sshKey": null })
    );
    assert_eq!(m["replication"].as_object().unwrap().len(), 4, "every service dataset under tank/persist");
    assert_eq!(m["backups"]["sonarr"]["repository"], "/srv/restic");
    assert_eq!(m["backups"]["sonarr"]["tags"], serde_json::json!(["sonarr"]));
    assert_eq!(m["thresholds"]["replicationLag"], serde_json::json!({ "warning": 43200, "critical": 86400 }));
    assert_eq!(
        local["sanoid"]["datasets"]["backup-pool/tank-replica"]["use_template"],
        serde_json::json!(["backup"]),
        "a local replica is pruned with the backup template"
    );

    // Remote, two datasets: each under destination/<last component>; ssh key and host reach monitoring.
    let remote = render_replication_ok(
        &lib,
        &format!(
            r#"{{ {STORAGE}
              modules.replication.zfs = {{
                enable = true;
                syncoid = {{ enable = true; destination = "backup@nas:vault/forge"; datasets = [ "tank/persist" "tank/media" ];
                            sshKey = "/var/lib/syncoid/id_ed25519"; }};
                monitoring.thresholds.replicationLagHours.warning = 6;
              }};
            }}"#
        ),
    );
    assert_eq!(remote["syncoid"]["commands"]["tank/media"]["target"], "backup@nas:vault/forge/media");
    assert_eq!(
        remote["config"]["monitoring"]["replication"]["sonarr"],
        serde_json::json!({ "dataset": "vault/forge/persist/sonarr", "host": "backup@nas", "sshKey": "/var/lib/syncoid/id_ed25519" })
    );
    assert_eq!(remote["config"]["monitoring"]["thresholds"]["replicationLag"]["warning"], 21_600);
    assert!(remote["sanoid"]["datasets"].get("vault/forge").is_none(), "a remote replica is not pruned from here");

    let err = render_replication(
        &lib,
        &format!("{{ {STORAGE} modules.replication.zfs = {{ enable = true; syncoid.enable = true; }}; }}"),
    )
    .expect_err("syncoid without a destination must fail");
    assert!(err.contains("syncoid.destination: must be set"), "{err}");
}

/// Stand-ins for nixpkgs' sanoid and syncoid options (a module; `l` is the lib expression). The
/// miniature NixOS declares `systemd.timers` itself.
fn replication_stubs(l: &str) -> String {
    format!(
        "{{ ... }}: {{
        options.services.sanoid = {l}.mkOption {{ type = {l}.types.lazyAttrsOf {l}.types.anything; default = {{ }}; }};
        options.services.syncoid = {l}.mkOption {{ type = {l}.types.lazyAttrsOf {l}.types.anything; default = {{ }}; }};
      }}"
    )
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn replication_nixos_wiring_uses_nixpkgs_sanoid_syncoid_and_notify_hooks() {
    let lib = nixpkgs_lib();
    let l = lib_expr(&lib);
    let stubs = replication_stubs(&l);
    let configuration = format!(
        r#"[ ./nix/modules/replication ({stubs}) {{ {STORAGE}
             modules.replication.zfs = {{ enable = true; syncoid = {{ enable = true; destination = "backup/replica"; }};
                                         monitoring.prometheusFile = "/var/lib/node-exporter/persistctl.prom"; }}; }} ]"#
    );
    let select = format!(
        r#"c: {{
             sanoid = {{ inherit (c.services.sanoid) enable interval; datasets = builtins.attrNames c.services.sanoid.datasets;
                        templates = builtins.attrNames c.services.sanoid.templates; }};
             syncoid = {{ inherit (c.services.syncoid) enable interval commands; }};
             units = builtins.mapAttrs (_: u: {{ onFailure = u.onFailure or [ ]; exec = u.serviceConfig.ExecStart or null;
                                                success = u.serviceConfig.SuccessExitStatus or null; }})
                       ({l}.filterAttrs (n: _: {l}.hasPrefix "sanoid" n || {l}.hasPrefix "syncoid" n || {l}.hasPrefix "persistctl-status" n) c.systemd.services);
             timers = builtins.mapAttrs (_: t: t.timerConfig) c.systemd.timers;
             monitoring = c.modules.storage.datasets.settings.monitoring or null;
             failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
           }}"#
    );
    let got = fake_nixos(&lib, &configuration, &select);
    assert_eq!(got["failed"], serde_json::json!([]));
    assert_eq!(got["sanoid"]["enable"], true);
    assert_eq!(got["sanoid"]["interval"], "hourly");
    assert_eq!(strings(&got["sanoid"]["datasets"]), ["backup/replica", "tank/persist/my app", "tank/persist/sonarr"]);
    assert_eq!(strings(&got["sanoid"]["templates"]), ["backup", "production"]);
    assert_eq!(got["syncoid"]["commands"]["tank/persist"]["target"], "backup/replica");
    let units = &got["units"];
    for unit in ["sanoid", "syncoid-tank-persist", "persistctl-status", "persistctl-status-deadman"] {
        assert_eq!(units[unit]["onFailure"], serde_json::json!(["notify@%n.service"]), "{unit}: {units:#}");
    }
    assert_eq!(units["persistctl-status"]["success"], "1 2 3");
    let exec = units["persistctl-status"]["exec"].as_str().unwrap();
    for part in [
        "status --state-file /var/lib/persistctl/status-state.json",
        "--prometheus /var/lib/node-exporter/persistctl.prom",
    ] {
        assert!(exec.contains(part), "{part} not in {exec}");
    }
    assert!(!exec.contains("--notify-command"), "status notifies through the config, not a hook: {exec}");
    assert_eq!(got["timers"]["persistctl-status"]["OnCalendar"], "*:0/15");
    assert_eq!(got["timers"]["persistctl-status-deadman"]["OnBootSec"], "2h");
    assert_eq!(got["monitoring"]["replication"]["sonarr"]["dataset"], "backup/replica/sonarr");
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn every_replication_option_has_a_description_and_an_example() {
    let lib = nixpkgs_lib();
    let got = eval_ok(&format!(
        r#"let
             lib = {lib};
             eval = lib.evalModules {{ modules = [ ./nix/modules/replication/options.nix ]; }};
             options = builtins.filter (o: lib.take 3 o.loc == [ "modules" "replication" "zfs" ] && !o.internal) (lib.optionAttrSetToDocList eval.options);
           in {{
             count = builtins.length options;
             undocumented = map (o: o.name) (builtins.filter (o: o.description == null || o.description == "" || !(o ? example)) options);
           }}"#,
        lib = lib_expr(&lib)
    ));
    assert!(got["count"].as_u64().is_some_and(|n| n > 25), "{got}");
    assert_eq!(strings(&got["undocumented"]), Vec::<&str>::new(), "options without a description or an example");
}

// ---- one restic repository declaration (nix/lib/restic.nix) ------------------------------------------

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn backup_and_preseed_declare_the_same_restic_repository_options() {
    let lib = nixpkgs_lib();
    let got = eval_ok(&format!(
        r#"let
             lib = {lib};
             eval = lib.evalModules {{ modules = [ ./nix/modules/storage-datasets/options.nix ]; }};
             docs = lib.optionAttrSetToDocList eval.options;
             typeOf = suffix: map (o: o.type) (builtins.filter (o: lib.hasSuffix suffix o.name) docs);
           in lib.genAttrs [ "repository" "repositoryFile" "passwordFile" "environmentFile" "tags" ] (n: {{
             backup = typeOf "backup.restic.${{n}}";
             preseed = typeOf "preseed.restic.${{n}}";
           }})"#,
        lib = lib_expr(&lib)
    ));
    for (name, types) in got.as_object().expect("object") {
        assert_eq!(types["backup"].as_array().map(Vec::len), Some(1), "{name}: {types}");
        assert_eq!(types["backup"], types["preseed"], "{name}");
    }
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn monitoring_and_preseed_render_a_backup_repository_alike() {
    let lib = nixpkgs_lib();
    let got = render_replication_ok(
        &lib,
        &format!(
            r#"{{ {STORAGE}
              modules.replication.zfs.enable = true;
              modules.storage.datasets.services.sonarr = {{
                backup.restic = {{ enable = true; repositoryFile = "/run/secrets/repo"; passwordFile = "/run/secrets/pw";
                                   environmentFile = "/run/secrets/s3.env"; tags = [ "sonarr" "media" ]; }};
                preseed.enable = true;
              }};
            }}"#
        ),
    );
    let config = &got["config"];
    let expected = serde_json::json!({
        "repository": null, "repositoryFile": "/run/secrets/repo", "passwordFile": "/run/secrets/pw",
        "environmentFile": "/run/secrets/s3.env", "tags": ["sonarr", "media"], "path": null, "host": null
    });
    assert_eq!(config["monitoring"]["backups"]["sonarr"], expected);
    assert_eq!(config["datasets"]["services"]["sonarr"]["preseed"]["restic"], expected, "preseed defaults to the job");
}

// ---- the notification worst case: one formula (nix/lib/delivery.nix = src/notify) ------------------

/// `persistctl check-config --json FILE`.
fn check_config_json(file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl"))
        .args(["check-config", "--json"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("Failed to run persistctl: {e}"));
    assert!(out.status.success(), "check-config --json {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("check-config --json printed no JSON: {e}"))
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn notify_unit_timeout_uses_the_binarys_worst_case() {
    let lib = nixpkgs_lib();
    // Every setting's bounds (options.nix) and values in between; 45 s doubles past the 60 s cap.
    let mut grid = Vec::new();
    for timeout in [1, 10, 600] {
        for attempts in [1, 3, 4, 10] {
            for retry_delay in [0, 2, 45, 300] {
                grid.push((timeout, attempts, retry_delay));
            }
        }
    }
    let settings: Vec<String> =
        grid.iter().map(|(t, a, r)| format!("{{ timeout = {t}; attempts = {a}; retryDelay = {r}; }}")).collect();
    let nix = eval_ok(&format!(
        "let d = import ./nix/lib/delivery.nix {{ lib = {}; }}; in map (s: {{ worst = d.deliveryWorstCase s; unit = d.unitTimeout s; }}) [ {} ]",
        lib_expr(&lib),
        settings.join(" ")
    ));
    let mut config = render(&lib, NOTIFYING_HOST).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.json");
    let mut wrong = Vec::new();
    for (i, (timeout, attempts, retry_delay)) in grid.iter().enumerate() {
        config["notifications"]["timeout"] = (*timeout).into();
        config["notifications"]["attempts"] = (*attempts).into();
        config["notifications"]["retryDelay"] = (*retry_delay).into();
        std::fs::write(&file, config.to_string()).expect("write");
        let rust = &check_config_json(&file)["notifications"];
        let (worst, unit) = (&nix[i]["worst"], &nix[i]["unit"]);
        if worst != &rust["deliveryWorstCaseSeconds"] {
            wrong.push(format!("{}: nix/lib/delivery.nix says {worst}, persistctl {rust}", settings[i]));
        }
        if unit.as_u64() <= rust["longestRunSeconds"].as_u64() {
            wrong.push(format!("{}: unit timeout {unit} does not exceed persistctl's own {rust}", settings[i]));
        }
    }
    assert!(wrong.is_empty(), "nix/lib/delivery.nix disagrees with src/notify:\n{}", wrong.join("\n"));

    // The module uses it; the fixtures have no notifications.
    let unit = fake_nixos(&lib, NOTIFYING_HOST, r#"c: c.systemd.services."notify@".serviceConfig.TimeoutStartSec"#);
    let d = eval_ok(&format!(
        "(import ./nix/lib/delivery.nix {{ lib = {}; }}).unitTimeout {{ timeout = 10; attempts = 4; retryDelay = 2; }}",
        lib_expr(&lib)
    ));
    assert_eq!(unit, d);
    for host in ["db", "forge", "luna"] {
        assert_eq!(check_config_json(&fixture(host))["notifications"], Value::Null, "{host}");
    }
}

// ---- modules.database.postgresql.pitr --------------------------------------------------------------

/// A PostgreSQL host with point-in-time recovery; `pitr` is added to the module's settings.
fn pitr_host(pitr: &str) -> String {
    format!(
        "{{ modules.storage.datasets.enable = true; services.postgresql.enable = true;
             modules.database.postgresql.pitr = {{ enable = true; {pitr} }}; }}"
    )
}

/// `persistctl check-config` on a config object: the binary reads what the module writes.
fn assert_check_config_accepts(config: &Value) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("Failed to make a temporary directory: {e}"));
    let file = dir.path().join("config.json");
    std::fs::write(&file, config.to_string()).unwrap_or_else(|e| panic!("Failed to write {}: {e}", file.display()));
    let out = Command::new(env!("CARGO_BIN_EXE_persistctl"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("Failed to run persistctl: {e}"));
    assert!(out.status.success(), "check-config refuses {config:#}:\n{}", String::from_utf8_lossy(&out.stderr));
}

const BARMAN_BIN: &str = "/nix/store/00000000000000000000000000000000-barman-3.19.1/bin";

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn pitr_renders_the_postgresql_section_and_the_restore_that_check_config_accepts() {
    let lib = nixpkgs_lib();
    let config = render(&lib, &pitr_host(r#"s3Bucket = "homelab-pitr/db";"#)).unwrap_or_else(|e| panic!("{e}"));
    let preseed = &service(&config, "postgres-data")["preseed"];
    assert_eq!(preseed["enable"], true);
    assert_eq!(strings(&preseed["sources"]), ["barman"]);
    assert_eq!(strings(&preseed["dataMarkers"]), ["PG_VERSION"], "a dataset without PG_VERSION is not a cluster");
    assert_eq!(preseed["allowEmptyBootstrap"], false, "an empty archive fails closed");
    assert_eq!(preseed["timeout"], 6 * 3600);
    assert!(service(&config, "postgres-wal")["preseed"].is_null(), "pg_wal comes with the restore of PGDATA");
    let pg = &config["postgresql"]["postgres-data"];
    assert_eq!(
        pg["archive"],
        serde_json::json!({ "destination": "s3://homelab-pitr/db", "serverName": "pg-main", "endpointUrl": null,
                            "cloudProvider": null, "environmentFile": null })
    );
    assert_eq!(
        pg["binDir"], "/nix/store/00000000000000000000000000000000-postgresql-17/bin",
        "render.nix's placeholder"
    );
    assert_eq!(
        (pg["user"].as_str(), pg["socketDir"].as_str(), pg["port"].as_u64()),
        (Some("postgres"), Some("/run/postgresql"), Some(5432))
    );
    assert_eq!(pg["walService"], "postgres-wal");
    assert_eq!(pg["walTimeout"], 300);
    for absent in ["targetTime", "backupId", "passwordFile", "compression", "retention"] {
        assert!(pg[absent].is_null(), "{absent}: {pg:#}");
    }
    assert_eq!(config["postgresql"].as_object().map(serde_json::Map::len), Some(1));
    assert_check_config_accepts(&config);

    // Every field the options reach, and what follows from the server's own settings.
    let config = render(
        &lib,
        r#"{ modules.storage.datasets = { enable = true; presets.postgresql.separateWal = false; };
             services.postgresql = { enable = true; settings = { port = 5433; unix_socket_directories = "/run/pg, /tmp"; }; };
             modules.database.postgresql.pitr = {
               enable = true; destination = "gs://homelab-pitr/db"; cloudProvider = "google-cloud-storage";
               endpointUrl = "https://storage.example.net"; environmentFile = "/run/secrets/pitr.env"; serverName = "db-2";
               targetTime = "2026-12-01T21:27:59.5+01:00"; backupId = "20261201T212759"; passwordFile = "/run/secrets/pgpass";
               compression = "bzip2"; retention = "REDUNDANCY 3"; walTimeout = 60; restoreTimeout = 7200; allowEmptyBootstrap = true;
             }; }"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let pg = &config["postgresql"]["postgres-data"];
    assert_eq!(
        pg,
        &serde_json::json!({
            "archive": { "destination": "gs://homelab-pitr/db", "serverName": "db-2", "endpointUrl": "https://storage.example.net",
                         "cloudProvider": "google-cloud-storage", "environmentFile": "/run/secrets/pitr.env" },
            "targetTime": "2026-12-01T21:27:59.5+01:00", "backupId": "20261201T212759",
            "binDir": "/nix/store/00000000000000000000000000000000-postgresql-17/bin",
            "user": "postgres", "socketDir": "/run/pg", "port": 5433, "passwordFile": "/run/secrets/pgpass",
            "compression": "bzip2", "retention": "REDUNDANCY 3", "walService": null, "walTimeout": 60
        })
    );
    let preseed = &service(&config, "postgres-data")["preseed"];
    assert_eq!((preseed["timeout"].as_u64(), preseed["allowEmptyBootstrap"].as_bool()), (Some(7200), Some(true)));
    assert!(config["datasets"]["services"].get("postgres-wal").is_none());
    assert_check_config_accepts(&config);

    // Off: no section, no restore; the preset alone is what it was.
    let off = render(&lib, "{ modules.storage.datasets.enable = true; services.postgresql.enable = true; }")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(off.get("postgresql").is_none(), "{off:#}");
    assert!(service(&off, "postgres-data")["preseed"].is_null());

    // render.nix reports the module's own problems, as the NixOS half asserts them.
    let err = render(&lib, &pitr_host(r#"s3Bucket = "a"; destination = "s3://b";"#)).expect_err("two destinations");
    assert!(err.contains("modules.database.postgresql.pitr: set s3Bucket or destination, not both"), "{err}");
}

/// The parts of the miniature NixOS the PITR wiring touches.
const PITR_SELECT: &str =
    "c: { settings = c.services.postgresql.settings; units = c.systemd.services; timers = c.systemd.timers;
                                 failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions); }";

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn pitr_nixos_wiring_archives_wal_and_makes_the_backup_units() {
    let lib = nixpkgs_lib();
    let db = nix_path(&repo().join("examples/db.nix"));
    let got = fake_nixos(&lib, &db, PITR_SELECT);
    assert_eq!(got["failed"], serde_json::json!([]));

    let settings = &got["settings"];
    assert_eq!(settings["wal_level"], "replica");
    assert_eq!(settings["archive_mode"], "on");
    assert_eq!(
        settings["archive_command"],
        format!(
            "{BARMAN_BIN}/barman-cloud-wal-archive --endpoint-url http://nas.lan:9000 --gzip s3://homelab-pitr/db pg-main %p"
        ),
        "the server name is there (the seed's command lacked it)"
    );
    assert_eq!(settings["archive_timeout"], "5min");
    assert_eq!(settings["max_wal_senders"], 3);

    let units = &got["units"];
    // The credentials reach archive_command through the server's environment, never its argv; the
    // sandbox is nixpkgs' own (nothing relaxed on a guess).
    let server = &units["postgresql"]["serviceConfig"];
    assert_eq!(strings(&server["EnvironmentFile"]), ["/run/secrets/pitr.env"]);
    assert!(!settings["archive_command"].as_str().unwrap().contains("pitr.env"));
    assert_eq!(strings(&server["SystemCallFilter"]), ["@system-service", "~@privileged", "~@resources"]);

    let argv = "/nix/store/00000000000000000000000000000000-persistctl-0.1.0/bin/persistctl \
                --config /nix/store/00000000000000000000000000000000-persistctl-config.json";
    let backup = &units["postgresql-base-backup"];
    assert_eq!(backup["serviceConfig"]["ExecStart"], format!("{argv} pg-base-backup postgres-data --timeout 21600"));
    assert_eq!(backup["serviceConfig"]["Type"], "oneshot");
    assert_eq!(backup["serviceConfig"]["TimeoutStartSec"], 6 * 3600 + 60, "persistctl's own timeout first");
    assert_eq!(strings(&backup["requires"]), ["postgresql.service"]);
    assert!(strings(&backup["after"]).contains(&"postgresql.service"));
    assert!(strings(&backup["after"]).contains(&"network-online.target"));
    assert_eq!(backup["restartIfChanged"], false, "a switch must not kill a base backup half-way");
    assert_eq!(
        got["timers"]["postgresql-base-backup"]["timerConfig"],
        serde_json::json!({ "OnCalendar": "daily", "Persistent": true })
    );
    assert_eq!(strings(&got["timers"]["postgresql-base-backup"]["wantedBy"]), ["timers.target"]);

    let after_restore = &units["postgresql-base-backup-after-restore"];
    assert_eq!(
        after_restore["serviceConfig"]["ExecStart"],
        format!("{argv} pg-base-backup --if-restored postgres-data --timeout 21600")
    );
    assert_eq!(
        strings(&after_restore["wantedBy"]),
        ["postgresql.service"],
        "runs on every start, a no-op unless restored"
    );
    assert_eq!(strings(&after_restore["requires"]), ["postgresql.service"]);
    assert!(strings(&after_restore["after"]).contains(&"postgresql.service"));
    assert_eq!(after_restore["serviceConfig"]["TimeoutStartSec"], 6 * 3600 + 60);

    let retention = &units["postgresql-retention"];
    assert_eq!(retention["serviceConfig"]["ExecStart"], format!("{argv} pg-retention postgres-data --timeout 3600"));
    assert_eq!(retention["serviceConfig"]["TimeoutStartSec"], 3600 + 60);
    assert_eq!(got["timers"]["postgresql-retention"]["timerConfig"]["OnCalendar"], "daily");

    // Every unit that runs barman-cloud finds it, and setpriv for dropping to postgres.
    for name in [
        "preseed@postgres-data",
        "postgresql-base-backup",
        "postgresql-base-backup-after-restore",
        "postgresql-retention",
    ] {
        let unit = &units[name];
        assert_eq!(unit["environment"]["PERSISTCTL_BARMAN_DIR"], BARMAN_BIN, "{name}");
        let path = strings(&unit["path"]);
        assert!(path.iter().any(|p| p.ends_with("-barman-3.19.1")), "{name}: {path:?}");
        assert!(path.iter().any(|p| p.ends_with("-util-linux-2.41")), "{name}: {path:?}");
        assert!(
            unit.get("onFailure").is_none_or(|v| strings(v).is_empty()),
            "no notify@ without modules.notifications"
        );
    }
    // The restore talks to the archive: after the network, before the server (which requires it).
    let preseed = &units["preseed@postgres-data"];
    assert!(strings(&preseed["after"]).contains(&"network-online.target"), "{preseed:#}");
    assert_eq!(strings(&preseed["before"]), ["postgresql.service"]);
    assert!(strings(&units["postgresql"]["requires"]).contains(&"preseed@postgres-data.service"));
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn pitr_units_and_settings_follow_the_options() {
    let lib = nixpkgs_lib();
    // No retention: no retention unit or timer; no credentials file: no EnvironmentFile=.
    let got = fake_nixos(
        &lib,
        &format!(
            "[ ({}) {{ services.postgresql.settings = {{ max_wal_senders = 10; wal_level = \"logical\"; }}; }} ]",
            pitr_host(
                r#"destination = "s3://pitr"; archiveTimeout = 60; baseBackupSchedule = "*-*-* 02:30:00"; baseBackupTimeout = 600;"#
            )
        ),
        PITR_SELECT,
    );
    assert_eq!(got["failed"], serde_json::json!([]));
    assert!(got["units"].get("postgresql-retention").is_none() && got["timers"].get("postgresql-retention").is_none());
    assert!(got["units"]["postgresql"]["serviceConfig"].get("EnvironmentFile").is_none());
    assert_eq!(got["settings"]["max_wal_senders"], 10, "the seed's 3 is only a default");
    assert_eq!(got["settings"]["wal_level"], "logical", "logical archives too");
    assert_eq!(got["settings"]["archive_timeout"], 60);
    assert_eq!(
        got["settings"]["archive_command"],
        format!("{BARMAN_BIN}/barman-cloud-wal-archive s3://pitr pg-main %p")
    );
    assert_eq!(got["timers"]["postgresql-base-backup"]["timerConfig"]["OnCalendar"], "*-*-* 02:30:00");
    assert_eq!(got["units"]["postgresql-base-backup"]["serviceConfig"]["TimeoutStartSec"], 660);
    let exec = got["units"]["postgresql-base-backup"]["serviceConfig"]["ExecStart"].as_str().unwrap_or_default();
    assert!(exec.ends_with(" pg-base-backup postgres-data --timeout 600"), "{exec}");

    // The default archive_command, one case per option that changes it.
    let command = |pitr: &str| {
        let got = fake_nixos(&lib, &pitr_host(pitr), "c: c.services.postgresql.settings.archive_command");
        got.as_str().expect("a string").to_string()
    };
    let archive = format!("{BARMAN_BIN}/barman-cloud-wal-archive");
    for (pitr, args) in [
        (r#"s3Bucket = "pitr";"#, "s3://pitr pg-main"),
        (r#"s3Bucket = "pitr/a/b"; serverName = "db.1";"#, "s3://pitr/a/b db.1"),
        (r#"s3Bucket = "pitr"; compression = "gzip";"#, "--gzip s3://pitr pg-main"),
        (r#"s3Bucket = "pitr"; compression = "bzip2";"#, "--bzip2 s3://pitr pg-main"),
        (r#"s3Bucket = "pitr"; compression = "snappy";"#, "--snappy s3://pitr pg-main"),
        (r#"s3Bucket = "pitr"; compression = "lz4";"#, "--lz4 s3://pitr pg-main"),
        (
            r#"destination = "https://acct.blob.core.windows.net/pitr"; cloudProvider = "azure-blob-storage";"#,
            "--cloud-provider azure-blob-storage https://acct.blob.core.windows.net/pitr pg-main",
        ),
        (
            r#"s3Bucket = "pitr"; cloudProvider = "aws-s3"; endpointUrl = "http://127.0.0.1:9000";"#,
            "--cloud-provider aws-s3 --endpoint-url http://127.0.0.1:9000 s3://pitr pg-main",
        ),
    ] {
        assert_eq!(command(pitr), format!("{archive} {args} %p"), "{pitr}");
    }
    assert_eq!(command(r#"s3Bucket = "pitr"; walArchiveCommand = "/bin/archive %p";"#), "/bin/archive %p");

    // With modules.notifications, a failed backup, restore-backup or retention run notifies.
    let notified = fake_nixos(
        &lib,
        &format!(
            r#"[ ({}) {{ modules.notifications = {{ enable = true; backends.ntfy.phone = {{ url = "https://ntfy.sh"; topic = "t"; }}; }}; }} ]"#,
            pitr_host(r#"s3Bucket = "pitr"; retention = "REDUNDANCY 2";"#)
        ),
        "c: builtins.mapAttrs (_: u: u.onFailure) { inherit (c.systemd.services) postgresql-base-backup postgresql-base-backup-after-restore postgresql-retention; }",
    );
    for (name, on_failure) in notified.as_object().expect("units") {
        assert_eq!(strings(on_failure), ["notify@%n.service"], "{name}");
    }
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn pitr_keeps_the_postgresql_datasets_out_of_restic_jobs() {
    let lib = nixpkgs_lib();
    // A dataset mounted above PGDATA, with a restic job: restic would descend into the mounted
    // cluster (it crosses file systems). sonarr's job is beside it, not above.
    let got = fake_nixos(
        &lib,
        &format!(
            r#"[ (import ./examples/forge.nix) ({}) {{
                 modules.storage.datasets.services.db = {{
                   mountpoint = "/srv/db";
                   backup.restic = {{ enable = true; repository = "/srv/restic/db"; passwordFile = "/run/secrets/r"; exclude = [ "**/*.tmp" ]; }};
                 }};
                 modules.storage.datasets.services.postgres-data.mountpoint = "/srv/db/pg[main]";
               }} ]"#,
            pitr_host(r#"s3Bucket = "pitr";"#)
        ),
        "c: { jobs = builtins.mapAttrs (_: j: { inherit (j) paths exclude; }) c.services.restic.backups;
              dataDir = c.services.postgresql.dataDir; }",
    );
    assert_eq!(got["dataDir"], "/srv/db/pg[main]");
    let jobs = &got["jobs"];
    let mut names: Vec<&String> = jobs.as_object().expect("jobs").keys().collect();
    names.sort();
    assert_eq!(names, ["db", "sonarr"], "no job of postgres-data or postgres-wal");
    assert_eq!(strings(&jobs["db"]["paths"]), ["/srv/db"]);
    assert_eq!(
        strings(&jobs["db"]["exclude"]),
        ["**/*.tmp", "/srv/db/pg\\[main]"],
        "a literal pattern, after the host's own"
    );
    assert_eq!(
        strings(&jobs["sonarr"]["exclude"]),
        ["**/.cache", "**/*.tmp"],
        "nothing of PostgreSQL below /persist/sonarr"
    );
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn the_fake_postgresql_options_are_as_strict_as_nixpkgs() {
    let lib = nixpkgs_lib();
    let try_host = |extra: &str| {
        eval(&format!(
            "let config = import {} {{ lib = {}; configuration = [ ({}) {{ {extra} }} ]; }}; in builtins.deepSeq \
             {{ s = config.services.postgresql.settings; f = config.systemd.services.postgresql.serviceConfig.SystemCallFilter; }} \
             config.systemd.services.postgresql.serviceConfig.SystemCallFilter",
            nix_path(&repo().join("tests/nix/fake-nixos.nix")),
            lib_expr(&lib),
            pitr_host(r#"s3Bucket = "pitr";"#)
        ))
    };
    // nixpkgs: settings are scalars; `port` is a port; a filter entry is a bool or { enable; priority; }.
    for (bad, option) in [
        (r#"services.postgresql.settings.archive_library = [ "x" ];"#, "services.postgresql.settings.archive_library"),
        (r#"services.postgresql.settings.port = "5432";"#, "services.postgresql.settings.port"),
        (r#"services.postgresql.systemCallFilter."@pkey" = "yes";"#, "services.postgresql.systemCallFilter"),
    ] {
        let err = try_host(bad).expect_err(bad);
        assert!(err.contains(option) && err.contains("is not of type"), "{bad}: {err}");
    }
    // A bool is coerced; entries are ordered by priority (groups, negated groups, single calls).
    let filter = try_host(
        r#"services.postgresql.systemCallFilter = { getpriority = true; "@pkey" = true; "~@resources" = false; };"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(strings(&filter), ["@pkey", "@system-service", "~@privileged", "getpriority"]);
}

#[test]
#[cfg_attr(not(nixpkgs_lib), ignore = "nixpkgs lib or nix-instantiate not found: set NIXPKGS_LIB")]
fn every_pitr_option_has_a_description_and_an_example() {
    let lib = nixpkgs_lib();
    let got = eval_ok(&format!(
        r#"let
             lib = {lib};
             eval = lib.evalModules {{ modules = [ ./nix/modules/storage-datasets/options.nix ./nix/modules/storage-datasets/presets.nix
                                                   ./nix/modules/postgresql-pitr/options.nix ./nix/lib/nixos-stubs.nix ]; }};
             options = builtins.filter (o: lib.take 4 o.loc == [ "modules" "database" "postgresql" "pitr" ] && !o.internal) (lib.optionAttrSetToDocList eval.options);
           in {{
             names = map (o: o.name) options;
             undocumented = map (o: o.name) (builtins.filter (o: o.description == null || o.description == "" || !(o ? example)) options);
           }}"#,
        lib = lib_expr(&lib)
    ));
    let names: Vec<&str> =
        strings(&got["names"]).into_iter().map(|n| n.trim_start_matches("modules.database.postgresql.pitr.")).collect();
    for option in [
        "enable",
        "s3Bucket",
        "destination",
        "endpointUrl",
        "cloudProvider",
        "environmentFile",
        "serverName",
        "walArchiveCommand",
        "archiveTimeout",
        "baseBackupSchedule",
        "compression",
        "retention",
        "retentionSchedule",
        "targetTime",
        "backupId",
        "allowEmptyBootstrap",
        "restoreTimeout",
        "walTimeout",
        "passwordFile",
        "barmanPackage",
    ] {
        assert!(names.contains(&option), "no option {option}: {names:?}");
    }
    assert_eq!(strings(&got["undocumented"]), Vec::<&str>::new(), "options without a description or an example");
}
