# modules.replication.zfs, the NixOS half: nixpkgs' own services.sanoid and services.syncoid with the
# rendered settings, `OnFailure=notify@%n.service` on their units (the notifications module provides
# notify@.service), and the persistctl-status timer with its deadman.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib)
    mkIf
    mkMerge
    ;
  cfg = config.modules.replication.zfs;
  r = cfg.rendered;
  replLib = import ./lib.nix { inherit lib; };
  storage = config.modules.storage.datasets;
  persistctl = "${storage.package}/bin/persistctl";
  onFailure = [ "notify@%n.service" ];

  stateDir = "/var/lib/persistctl";
  stateFile = "${stateDir}/status-state.json";

  # On a change of state, status sends the `status-change` notification itself, through the
  # config's `notifications` section (modules.notifications), with the state and the summary.
  statusArgv = [
    persistctl
    "status"
    "--state-file"
    stateFile
  ]
  ++ lib.optionals (cfg.monitoring.prometheusFile != null) [
    "--prometheus"
    cfg.monitoring.prometheusFile
  ];

  deadmanSeconds = cfg.monitoring.deadmanHours * 3600;
  deadmanScript = pkgs.writeShellScript "persistctl-status-deadman" ''
    now=$(date +%s)
    last=$(stat -c %Y ${stateFile} 2>/dev/null || echo 0)
    if [ $((now - last)) -gt ${toString deadmanSeconds} ]; then
      echo "persistctl status has not completed for more than ${toString cfg.monitoring.deadmanHours} h (${stateFile} last written at $last)" >&2
      exit 1
    fi
  '';
in
{
  config = mkIf cfg.enable (mkMerge [
    {
      assertions = map (message: {
        assertion = false;
        inherit message;
      }) r.errors;

      services.sanoid = {
        enable = true;
        inherit (cfg.sanoid) interval;
        inherit (r.sanoid) templates datasets;
      };
      systemd.services.sanoid.onFailure = onFailure;
    }

    (mkIf cfg.syncoid.enable {
      services.syncoid = {
        enable = true;
        inherit (cfg.syncoid) interval sshKey;
        inherit (r.syncoid) commands;
      };
      systemd.services = lib.mapAttrs' (
        name: _: lib.nameValuePair (replLib.syncoidUnitName name) { inherit onFailure; }
      ) r.syncoid.commands;
    })

    (mkIf cfg.monitoring.enable {
      systemd.services.persistctl-status = {
        description = "Check ZFS datasets, snapshots, replication and backups (persistctl status)";
        after = [ "zfs.target" ];
        path = [
          config.boot.zfs.package
          pkgs.restic
          config.programs.ssh.package
        ];
        inherit onFailure;
        serviceConfig = {
          Type = "oneshot";
          ExecStart = utils.escapeSystemdExecArgs statusArgv;
          # 1-3 are WARNING/CRITICAL/UNKNOWN results, notified on change; only a crash fails the unit.
          SuccessExitStatus = "1 2 3";
          StateDirectory = "persistctl";
          # A oneshot has no start timeout by default: a status run stuck on a pool, a repository
          # or a replica host would never finish, and the deadman would be the only alert.
          TimeoutStartSec = cfg.monitoring.timeout;
        };
      };
      systemd.timers.persistctl-status = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = cfg.monitoring.interval;
          Persistent = true;
        };
      };

      systemd.services.persistctl-status-deadman = {
        description = "Alert when persistctl status has not completed for ${toString cfg.monitoring.deadmanHours} h";
        inherit onFailure;
        serviceConfig = {
          Type = "oneshot";
          ExecStart = "${deadmanScript}";
          # date and stat of one file.
          TimeoutStartSec = 60;
        };
      };
      systemd.timers.persistctl-status-deadman = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnBootSec = "${toString cfg.monitoring.deadmanHours}h";
          OnUnitActiveSec = "30min";
        };
      };
    })
  ]);
}
