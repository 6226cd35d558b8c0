# A miniature NixOS for testing nix/modules/storage-datasets/nixos.nix without nixpkgs: just the
# options that module touches, typed and merged the way NixOS does (lists concatenate, unit
# settings merge like systemd unit options), and a fake pkgs whose derivations are plain records.
#
#   import ./tests/nix/fake-nixos.nix { lib; configuration; }  ->  the evaluated `config`
#
# Not a substitute for the nixosTests in nix/tests/ (they need real NixOS and KVM); it catches
# mistakes in the wiring (names, ordering, escaping) where they can be evaluated: here.
{
  lib,
  configuration,
}:
let
  inherit (lib) mkOption types;

  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    }
    // extra;

  pkgs = {
    stdenv = {
      buildPlatform.canExecute = _: true;
      hostPlatform.system = "x86_64-linux";
    };
    runtimeShell = "/nix/store/00000000000000000000000000000000-bash/bin/sh";
    restic = fakeDrv "restic" { };
    coreutils = fakeDrv "coreutils-9.8" { };
    util-linux = fakeDrv "util-linux-2.41" { };
    barman = fakeDrv "barman-3.19.1" { };
    postgresql_17 = fakeDrv "postgresql-17.7" {
      version = "17.7";
      psqlSchema = "17";
    };
    runCommand = name: env: script: fakeDrv name { inherit env script; };
    writeShellScript = name: text: fakeDrv name { inherit text; };
    callPackage = _path: _args: fakeDrv "persistctl-0.1.0" { };
  };

  # systemd's unit option merge: lists concatenate, scalars must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      if lib.any (d: builtins.isList d.value) defs then
        lib.concatMap (d: lib.toList d.value) defs
      else
        lib.mergeEqualOption loc defs;
  };

  listOfStr = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };

  serviceModule = {
    freeformType = types.lazyAttrsOf types.anything;
    options = {
      description = mkOption {
        type = types.str;
        default = "";
      };
      wants = listOfStr;
      requires = listOfStr;
      after = listOfStr;
      before = listOfStr;
      wantedBy = listOfStr;
      requiredBy = listOfStr;
      conflicts = listOfStr;
      onFailure = listOfStr;
      path = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      # nixpkgs' type: Environment= entries.
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    };
  };

  nixosOptions =
    { ... }:
    {
      options = {
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        boot.zfs.package = mkOption {
          type = types.package;
          default = fakeDrv "zfs-user-2.3.4" { };
        };
        boot.zfs.enabled = mkOption {
          type = types.bool;
          default = true;
        };
        programs.ssh.package = mkOption {
          type = types.package;
          default = fakeDrv "openssh" { };
        };
        environment.etc = mkOption {
          type = types.attrsOf (types.submodule { options.source = mkOption { type = types.unspecified; }; });
          default = { };
        };
        environment.systemPackages = mkOption {
          type = types.listOf types.package;
          default = [ ];
        };
        system.build = mkOption {
          type = types.lazyAttrsOf types.unspecified;
          default = { };
        };
        system.activationScripts = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                text = mkOption { type = types.lines; };
                deps = listOfStr;
                supportsDryActivation = mkOption {
                  type = types.bool;
                  default = false;
                };
              };
            }
          );
          default = { };
        };
        systemd.services = mkOption {
          type = types.attrsOf (types.submodule serviceModule);
          default = { };
        };
        systemd.tmpfiles.rules = listOfStr;
        systemd.package = mkOption {
          type = types.package;
          default = fakeDrv "systemd-258" { };
        };
        # How NixOS creates users when not by the activation script (nixpkgs 24.11 and later).
        services.userborn.enable = mkOption {
          type = types.bool;
          default = false;
        };
        systemd.sysusers.enable = mkOption {
          type = types.bool;
          default = false;
        };
        systemd.timers = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                wantedBy = listOfStr;
                timerConfig = mkOption {
                  type = types.attrsOf unitOption;
                  default = { };
                };
              };
            }
          );
          default = { };
        };
        # nixpkgs' restic jobs: the list options typed as there (so that two modules' `exclude`
        # concatenate), the rest taken as it comes.
        services.restic.backups = mkOption {
          type = types.attrsOf (
            types.submodule {
              freeformType = types.lazyAttrsOf types.anything;
              options = {
                paths = listOfStr;
                exclude = listOfStr;
              };
            }
          );
          default = { };
        };
      };
    };

  # What nixpkgs' postgresql module does with the options persistctl's modules touch, when enabled:
  # the package by stateVersion (25.11: 17), its default syscall filter, and the filter as the
  # unit's SystemCallFilter= list (enabled entries, by priority).
  nixpkgsPostgresql =
    { config, ... }:
    let
      pg = config.services.postgresql;
    in
    {
      config = lib.mkIf pg.enable {
        services.postgresql.package = lib.mkDefault pkgs.postgresql_17;
        services.postgresql.systemCallFilter = lib.mapAttrs (_: lib.mkDefault) {
          "@system-service" = true;
          "~@privileged" = true;
          "~@resources" = true;
        };
        systemd.services.postgresql.serviceConfig.SystemCallFilter = lib.pipe pg.systemCallFilter [
          (lib.mapAttrsToList (name: v: v // { inherit name; }))
          (builtins.filter (v: v.enable))
          lib.sortProperties
          (map (v: v.name))
        ];
      };
    };

  utils.escapeSystemdExecArgs = lib.concatMapStringsSep " " (
    arg: if builtins.match "[A-Za-z0-9_./@:=-]+" arg != null then arg else builtins.toJSON arg
  );
in
(lib.evalModules {
  modules = [
    nixosOptions
    nixpkgsPostgresql
    ../../nix/lib/nixpkgs-services.nix
    ../../nix/modules/storage-datasets
    ../../nix/modules/notifications
    ../../nix/modules/postgresql-pitr
    { _module.args = { inherit pkgs utils; }; }
  ]
  ++ lib.toList configuration;
}).config
