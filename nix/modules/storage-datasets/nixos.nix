# modules.storage.datasets, the NixOS half: the config file, the activation script, the boot unit,
# the preseed units, service ordering, tmpfiles rules and restic jobs. All decisions about ZFS are
# made by the persistctl binary; this file only decides when it runs.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib)
    concatMap
    escapeShellArg
    filterAttrs
    genAttrs
    mapAttrs'
    mapAttrsToList
    mkDefault
    mkIf
    mkMerge
    nameValuePair
    optional
    optionals
    unique
    ;
  cfg = config.modules.storage.datasets;
  serviceOption = name: "modules.storage.datasets.services.${lib.strings.escapeNixIdentifier name}";
  persistctl = "${cfg.package}/bin/persistctl";
  zfsPackage = config.boot.zfs.package;

  canRunCheck = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;

  # The config, checked by the binary that will read it: a bad config fails `nixos-rebuild build`.
  configFile =
    pkgs.runCommand "persistctl-config.json"
      {
        json = builtins.toJSON cfg.settings;
        passAsFile = [ "json" ];
        preferLocalBuild = true;
        allowSubstitutes = false;
      }
      ''
        cp "$jsonPath" "$out"
        ${
          if canRunCheck then
            ''${persistctl} check-config "$out"''
          else
            ''echo "persistctl: cross build, 'persistctl check-config' skipped" >&2''
        }
      '';

  # Unit names may hold letters, digits and `:_.-\`; service names add only the space.
  unitInstance = name: builtins.replaceStrings [ " " ] [ "\\x20" ] name;
  preseedUnit = name: "preseed@${unitInstance name}";

  datasetUnit = "zfs-service-datasets.service";

  preseeded = filterAttrs (_: s: s.preseed.enable) cfg.services;
  backedUp = filterAttrs (_: s: s.backup.restic.enable) cfg.services;

  # A preseed that may talk to another machine waits for the network.
  needsNetwork =
    s:
    let
      p = s.preseed;
      remoteRepository =
        p.restic.repositoryFile != null
        || (p.restic.repository != null && !(lib.hasPrefix "/" p.restic.repository));
    in
    (builtins.elem "restic" p.sources && remoteRepository)
    || (builtins.elem "replica" p.sources && p.replica.host != null)
    # A barman-cloud archive is an object store (s3://, gs://, https://).
    || builtins.elem "barman" p.sources;

  preseedExec =
    name:
    let
      argv = [
        persistctl
        "preseed"
        name
      ];
    in
    if cfg.notifyCommand == null then
      utils.escapeSystemdExecArgs argv
    else
      toString (
        pkgs.writeShellScript "preseed-${lib.strings.sanitizeDerivationName name}" ''
          rc=0
          ${lib.escapeShellArgs argv} || rc=$?
          PERSISTCTL_SERVICE=${escapeShellArg name} PERSISTCTL_EXIT_STATUS=$rc ${pkgs.runtimeShell} -c ${escapeShellArg cfg.notifyCommand} \
            || echo "persistctl: notifyCommand failed for ${name} (ignored)" >&2
          exit "$rc"
        ''
      );

  # Path lists in unit settings are split at spaces unless quoted (RequiresMountsFor=, ReadWritePaths=).
  unitPath = path: if lib.hasInfix " " path then ''"${path}"'' else path;
  # A condition or assertion takes one path, the rest of the line, with specifiers expanded.
  assertPath = builtins.replaceStrings [ "%" ] [ "%%" ];

  # persistctl's own global flags, before the subcommand.
  persistctlArgv = [
    persistctl
    "--config"
    "${configFile}"
    "--zfs-timeout"
    (toString cfg.zfsTimeout)
  ];

  # The mount guarantee of a unit that keeps data on the datasets `names`: systemd asserts each
  # path is a mount point (cheap, visible in `systemctl status`), and `persistctl guard`, the first
  # ExecStartPre (before e.g. postgresql's initdb in preStart), refuses unless the top mount there
  # is that dataset, and, with `--old-path`, while the dataset is empty and the service's old data
  # directory still holds files. `+`: with full privileges, whatever User= the service runs as.
  guardArgv =
    names:
    persistctlArgv
    ++ [ "guard" ]
    ++ names
    ++ concatMap (
      name:
      let
        old = cfg.services.${name}.oldDataPath;
      in
      optionals (old != null) [
        "--old-path"
        "${name}=${old}"
      ]
    ) names;
  guardUnit = names: {
    unitConfig.AssertPathIsMountPoint = map (name: assertPath cfg.services.${name}.path) names;
    serviceConfig.ExecStartPre = lib.mkBefore [ "+${utils.escapeSystemdExecArgs (guardArgv names)}" ];
  };

  # The units that create users and groups, when NixOS uses them instead of the activation script:
  # owners are resolved by name. `or false`: the options exist only in a NixOS recent enough.
  usersUnits =
    optional (config.services.userborn.enable or false) "userborn.service"
    ++ optional (config.systemd.sysusers.enable or false) "systemd-sysusers.service";

  # Every persistctl call of the activation script runs under this: a zfs call blocked on a
  # suspended pool must not hang the switch. --kill-after: SIGKILL the whole process group (and
  # timeout itself, exit 137) if SIGTERM is not enough.
  activationTimeout = "${pkgs.coreutils}/bin/timeout --kill-after=10 ${toString cfg.applyTimeout}";

  tmpfilesField = v: if v == null then "-" else v;

  # The activation snippet: a thin call. `apply` on switch/test, `plan` on dry-activate, nothing at
  # boot (the unit below runs once the pools are imported). A failure is shouted and the switch goes
  # on (persistctl itself exits 0, with a warning, for a pool that is not imported).
  activationScript = ''
    (
      PATH=${lib.makeBinPath [ zfsPackage ]}:$PATH
      persistctl_timed_out() {
        case "$1" in
          124 | 137)
            echo "persistctl: WARNING: 'persistctl $2' did not finish within ${toString cfg.applyTimeout} s (modules.storage.datasets.applyTimeout) and was stopped (exit $1)." >&2
            echo "A zfs command may be blocked on a suspended pool: look at 'zpool status'." >&2
            ;;
        esac
      }
      case "''${NIXOS_ACTION:-}" in
        dry-activate)
          echo "persistctl: datasets a switch would change (persistctl plan):"
          rc=0
          ${activationTimeout} ${lib.escapeShellArgs persistctlArgv} plan || rc=$?
          persistctl_timed_out "$rc" plan
          if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
            echo "persistctl: WARNING: 'persistctl plan' failed (exit $rc)" >&2
          fi
          ;;
        switch | test)
          rc=0
          ${activationTimeout} ${lib.escapeShellArgs persistctlArgv} apply || rc=$?
          persistctl_timed_out "$rc" apply
          if [ "$rc" -ne 0 ]; then
            echo "" >&2
            echo "################################################################################" >&2
            echo "persistctl: WARNING: 'persistctl apply' failed (exit $rc)." >&2
            echo "The service datasets may not match modules.storage.datasets; the switch goes on." >&2
            echo "Look at the messages above, then run: persistctl plan" >&2
            echo "################################################################################" >&2
          fi
          ;;
        *)
          # Early boot (no action set): non-root pools are not imported yet;
          # zfs-service-datasets.service applies the config after zfs-import.target.
          ;;
      esac
      true
    )
  '';
in
{
  config = mkMerge [
    {
      modules.storage.datasets.package = mkDefault (
        pkgs.persistctl or (pkgs.callPackage ../../package.nix { })
      );
    }

    (mkIf cfg.enable (mkMerge [
      {
        assertions = [
          {
            assertion = config.boot.zfs.enabled or true;
            message = ''modules.storage.datasets needs ZFS: add "zfs" to boot.supportedFilesystems.'';
          }
        ]
        ++ mapAttrsToList (name: s: {
          assertion = s.usedBy != [ ];
          message = "${serviceOption name}.preseed.enable needs ${serviceOption name}.usedBy: the systemd services the restore must run before.";
        }) preseeded
        ++ concatMap (
          name:
          let
            b = cfg.services.${name}.backup.restic;
            at = "${serviceOption name}.backup.restic";
          in
          [
            {
              assertion = b.passwordFile != null;
              message = "${at}.passwordFile must be set.";
            }
            {
              assertion = (b.repository == null) != (b.repositoryFile == null);
              message = "${at}: set exactly one of repository and repositoryFile.";
            }
            {
              assertion = builtins.match "[A-Za-z0-9_.:-]+" name != null;
              message = "${at}: the restic job is named after the service, and \"${name}\" cannot be a systemd unit name part; declare services.restic.backups yourself.";
            }
          ]
        ) (builtins.attrNames backedUp);

        environment.etc."persistctl/config.json".source = configFile;
        environment.systemPackages = [ cfg.package ];
        system.build.persistctlConfig = configFile;

        system.activationScripts.zfs-service-datasets = {
          supportsDryActivation = true;
          # Owners are resolved by name, so users and groups come first where a script makes them.
          deps = optional (config.system.activationScripts ? users) "users";
          text = activationScript;
        };

        # At boot: after the pools are imported and ZFS has mounted its file systems, before the
        # services that use the datasets (they are After= it). Restarted (so re-applied) when the
        # config changes. Plain `apply`, not `--require-pools`: this unit is restarted by every
        # switch that changes the config, and a removable pool that is absent must not fail the
        # switch. Services are kept off an empty directory by their guard (below) and their preseed
        # unit, which fail when the dataset is not mounted.
        #
        # After zfs-mount.service, not before it: under a parent that ZFS mounts itself
        # (mountpoint=/persist, canmount=on) the parent is only mounted by zfs-mount.service, and
        # persistctl refuses to create children under an unmounted parent (they would be hidden
        # once it is mounted). A legacy parent (fileSystems."/persist") comes in through
        # RequiresMountsFor=. Existing children are mounted by zfs-mount too; new ones by
        # `zfs create`.
        #
        # Users first: owners are resolved by name, so this unit is After= the unit that creates
        # users (userborn.service or systemd-sysusers.service; the activation script's `users`
        # snippet runs before any unit starts).
        #
        # No cycle: every unit this one is After= is an early-boot unit that NixOS orders before
        # local-fs.target or sysinit.target (zfs-import.target, zfs-mount.service, the parent's
        # mount unit, userborn/sysusers: DefaultDependencies=no, Before=sysinit.target, After=
        # systemd-remount-fs.service and the mounts of their own directories). This unit is
        # Before= only shutdown.target and, through their own After=, the usedBy services and
        # preseed units, ordinary services after sysinit.target. It is no longer Before=
        # local-fs.target or zfs-mount.service: with a users unit After= a mount unit (which is
        # Before= local-fs.target) or After= zfs-mount.service, "users -> this -> local-fs.target"
        # could close a loop. DefaultDependencies=false stays: the defaults would add After=
        # sysinit.target basic.target, and a cycle with any usedBy service that is itself early.
        # A oneshot has no start timeout by default, hence TimeoutStartSec=.
        systemd.services.zfs-service-datasets = {
          description = "Create and tune the service datasets of modules.storage.datasets (persistctl)";
          wantedBy = [ "multi-user.target" ];
          wants = [ "zfs-import.target" ];
          after = [
            "zfs-import.target"
            "zfs-mount.service"
          ]
          ++ usersUnits;
          before = [ "shutdown.target" ];
          conflicts = [ "shutdown.target" ];
          restartTriggers = [ configFile ];
          path = [ zfsPackage ];
          unitConfig = {
            DefaultDependencies = false;
            # A legacy-mounted parent (fileSystems."/persist") must be mounted before children are
            # created under it, or they would be hidden by the parent's mount.
            RequiresMountsFor = map unitPath (
              unique ([ cfg.parentMount ] ++ mapAttrsToList (_: s: builtins.dirOf s.path) cfg.services)
            );
          };
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            # persistctl gives each zfs call --zfs-timeout; this bounds the whole run.
            TimeoutStartSec = cfg.applyTimeout;
            ExecStart = utils.escapeSystemdExecArgs (persistctlArgv ++ [ "apply" ]);
          };
        };
      }

      # Every service that keeps data on a dataset: after the dataset unit (Wants, not Requires, so
      # restarting it on a config change does not restart the services), and after its mounts.
      {
        systemd.services = genAttrs (unique (concatMap (s: s.usedBy) (builtins.attrValues cfg.services))) (
          unit:
          let
            used = filterAttrs (_: s: builtins.elem unit s.usedBy) cfg.services;
            preseeds = mapAttrsToList (name: _: "${preseedUnit name}.service") (
              filterAttrs (_: s: s.preseed.enable) used
            );
          in
          mkMerge [
            {
              wants = [ datasetUnit ];
              after = [ datasetUnit ] ++ preseeds;
              requires = preseeds;
              unitConfig.RequiresMountsFor = mapAttrsToList (_: s: unitPath s.path) used;
            }
            (guardUnit (builtins.attrNames used))
          ]
        );
      }

      # preseed@<name>: restore before the services start; a failure keeps them stopped (Requires=).
      {
        systemd.services = mapAttrs' (
          name: s:
          nameValuePair (preseedUnit name) {
            description = "Restore the data of ${name} before it starts (persistctl preseed)";
            wants = [ datasetUnit ] ++ optional (needsNetwork s) "network-online.target";
            after = [
              datasetUnit
              "zfs-mount.service"
              "local-fs.target"
            ]
            ++ optional (needsNetwork s) "network-online.target";
            before = map (unit: "${unit}.service") s.usedBy;
            path = [
              zfsPackage
              pkgs.restic
              config.programs.ssh.package
            ];
            # Only the first start matters. A restart would restart the services that require it.
            restartIfChanged = false;
            unitConfig.RequiresMountsFor = [ (unitPath (builtins.dirOf s.path)) ];
            serviceConfig = {
              Type = "oneshot";
              RemainAfterExit = true;
              ExecStart = preseedExec name;
              TimeoutStartSec = s.preseed.timeout + 60;
            };
          }
        ) preseeded;
      }

      {
        systemd.tmpfiles.rules = concatMap (
          s:
          optional s.tmpfiles "d '${s.path}' ${tmpfilesField s.mode} ${tmpfilesField s.owner} ${tmpfilesField s.group} - -"
        ) (builtins.attrValues cfg.services);
      }

      # Restic jobs through nixpkgs' services.restic.backups, one per dataset that asks for one.
      {
        services.restic.backups = builtins.mapAttrs (
          name: s:
          let
            b = s.backup.restic;
          in
          {
            inherit (b)
              repository
              repositoryFile
              environmentFile
              exclude
              timerConfig
              pruneOpts
              initialize
              ;
            passwordFile = if b.passwordFile == null then "" else b.passwordFile;
            paths = [ s.path ];
            extraBackupArgs = map (tag: "--tag=${tag}") b.tags ++ b.extraBackupArgs;
          }
        ) backedUp;

        systemd.services = mapAttrs' (
          name: s:
          nameValuePair "restic-backups-${name}" (mkMerge [
            {
              after = [ datasetUnit ];
              unitConfig.RequiresMountsFor = [ (unitPath s.path) ];
              # nixpkgs' restic unit is a oneshot without a start timeout.
              serviceConfig.TimeoutStartSec = s.backup.restic.timeout;
            }
            # Never back up an empty directory in place of the dataset: with pruneOpts, the
            # snapshots of an empty directory would push the real ones out.
            (guardUnit [ name ])
          ])
        ) backedUp;
      }

      # postgres-wal lives outside the data directory nixpkgs' unit is allowed to write to.
      (mkIf (cfg.presets.postgresql.enable && cfg.presets.postgresql.separateWal) {
        systemd.services.postgresql.serviceConfig.ReadWritePaths = [ (unitPath cfg.services.postgres-wal.path) ];
      })
    ]))
  ];
}
