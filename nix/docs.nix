# docs/options.md, generated from the option declarations with nixpkgs' lib alone:
#
#   tests/nix/gen-options-doc.sh        (writes docs/options.md)
#
# `cargo test --test nix_eval` fails when docs/options.md differs from this file's output.
{ lib }:
let
  eval = lib.evalModules {
    modules = [
      ./modules/storage-datasets/options.nix
      ./modules/storage-datasets/presets.nix
      ./modules/notifications/options.nix
      ./modules/replication/options.nix
      ./modules/postgresql-pitr/options.nix
      ./lib/nixos-stubs.nix
      { _module.args.pkgs = throw "nix/docs.nix evaluates without pkgs"; }
    ];
  };

  root = toString ../.;

  docList = lib.optionAttrSetToDocList eval.options;
  optionsUnder =
    path: builtins.filter (opt: opt.visible && !opt.internal && lib.take (builtins.length path) opt.loc == path) docList;
  options = optionsUnder [
    "modules"
    "storage"
    "datasets"
  ];
  notificationOptions = optionsUnder [
    "modules"
    "notifications"
  ];
  replicationOptions = optionsUnder [
    "modules"
    "replication"
  ];
  pitrOptions = optionsUnder [
    "modules"
    "database"
    "postgresql"
    "pitr"
  ];

  # literalExpression/literalMD values as rendered by lib (renderOptionValue).
  # Inline values follow the label after a space; multi-line ones go in a block below it.
  value =
    v:
    let
      text = lib.trim v.text;
    in
    if v._type or null == "literalMD" then
      " ${text}"
    else if lib.hasInfix "\n" text then
      "\n\n```nix\n${text}\n```"
    else
      " `${text}`";

  file = path: lib.removePrefix "${root}/" (toString path);

  section =
    opt:
    ''
      ## `${opt.name}`

      ${lib.trim opt.description}

      *Type:* ${opt.type}
    ''
    + lib.optionalString (opt ? default) ''

      *Default:*${value opt.default}
    ''
    + lib.optionalString (opt ? example) ''

      *Example:*${value opt.example}
    ''
    + lib.optionalString opt.readOnly ''

      *Read-only.*
    ''
    + ''

      *Declared in:* ${lib.concatMapStringsSep ", " (d: "`${file d}`") opt.declarations}

    '';
in
''
  # `modules.storage.datasets` options

  Generated from the option declarations by `tests/nix/gen-options-doc.sh` (`nix/docs.nix`); do not
  edit by hand. `cargo test --test nix_eval` fails when this file is out of date.

  The JSON these options produce is described in [config-format.md](config-format.md);
  `nix/render.nix` shows it for a given host (see the README, "Use it in your flake").

''
+ lib.concatMapStrings section options
+ ''
  # `modules.notifications` options

  What `persistctl notify` sends and where: [notifications.md](notifications.md).

''
+ lib.concatMapStrings section notificationOptions
+ ''
  # `modules.replication.zfs` options

  Snapshots (nixpkgs' `services.sanoid`), replication (`services.syncoid`) and the `persistctl status`
  timer: [storage-architecture.md](storage-architecture.md).

''
+ lib.concatMapStrings section replicationOptions
+ ''
  # `modules.database.postgresql.pitr` options

  PostgreSQL point-in-time recovery with barman-cloud: WAL archiving, base backups, retention, and a
  restore of an empty `postgres-data` dataset before `postgresql.service` starts. The units it makes:
  `postgresql-base-backup.service` (and `.timer`), `postgresql-base-backup-after-restore.service`,
  `postgresql-retention.service` (and `.timer`, when `retention` is set); the restore is the
  `barman` source of `preseed@postgres-data.service`.

''
+ lib.concatMapStrings section pitrOptions
