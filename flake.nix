{
  description = "persistctl: declarative, self-healing ZFS persistence for NixOS homelabs";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      persistctlLib = import ./nix/lib { inherit lib; };

      # A host with the module and one of the examples, as far as `nix flake check` needs it.
      exampleHost =
        system: example:
        lib.nixosSystem {
          inherit system;
          modules = [
            self.nixosModules.default
            example
            {
              boot.loader.grub.enable = false;
              boot.supportedFilesystems = [ "zfs" ];
              fileSystems."/" = {
                device = "rpool/root";
                fsType = "zfs";
              };
              networking.hostId = "8425e349";
              nixpkgs.config.allowUnfreePredicate = pkg: lib.getName pkg == "plexmediaserver";
              system.stateVersion = "25.11";
            }
          ];
        };

      # Evaluates a host completely (assertions included) and builds its checked config file:
      # `persistctl check-config` on the JSON the examples produce.
      evalCheck =
        pkgs: name: example:
        let
          host = exampleHost pkgs.stdenv.hostPlatform.system example;
        in
        pkgs.runCommand "persistctl-eval-${name}"
          {
            toplevel = builtins.unsafeDiscardStringContext host.config.system.build.toplevel.drvPath;
            config = host.config.system.build.persistctlConfig;
          }
          ''
            echo "$toplevel evaluates; its config:" > $out
            cat "$config" >> $out
          '';

      badConfigs = lib.mapAttrs' (file: _: lib.nameValuePair (lib.removeSuffix ".nix" file) ./tests/nix/bad/${file}) (
        builtins.readDir ./tests/nix/bad
      );
    in
    {
      overlays.default = final: _prev: {
        persistctl = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (pkgs: rec {
        persistctl = pkgs.callPackage ./nix/package.nix { };
        default = persistctl;
      });

      # Written as attrsets so `nix flake check` (Nix 2.8 included) accepts them as modules.
      nixosModules = {
        storage-datasets = {
          imports = [ ./nix/modules/storage-datasets ];
        };
        notifications = {
          imports = [ ./nix/modules/notifications ];
        };
        replication-zfs = {
          imports = [ ./nix/modules/replication ];
        };
        postgresql-pitr = {
          imports = [ ./nix/modules/postgresql-pitr ];
        };
        default = {
          imports = [
            ./nix/modules/storage-datasets
            ./nix/modules/notifications
            ./nix/modules/replication
            ./nix/modules/postgresql-pitr
          ];
        };
      };

      lib = persistctlLib;

      checks = forAllSystems (
        pkgs:
        let
          runTest = file: pkgs.testers.runNixOSTest (import file { inherit self; });
        in
        {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.persistctl;

          eval-forge = evalCheck pkgs "forge" ./examples/forge.nix;
          eval-luna = evalCheck pkgs "luna" ./examples/luna.nix;
          eval-db = evalCheck pkgs "db" ./examples/db.nix;

          # The committed fixtures (applied by the real-ZFS tests) are what the examples render.
          rendered-fixtures =
            let
              current =
                host:
                persistctlLib.renderConfig ./examples/${host}.nix
                == lib.importJSON ./tests/fixtures/rendered/${host}.json;
            in
            assert lib.assertMsg (current "forge") "tests/fixtures/rendered/forge.json is stale: run tests/nix/update-fixtures.sh";
            assert lib.assertMsg (current "luna") "tests/fixtures/rendered/luna.json is stale: run tests/nix/update-fixtures.sh";
            assert lib.assertMsg (current "db") "tests/fixtures/rendered/db.json is stale: run tests/nix/update-fixtures.sh";
            pkgs.runCommand "persistctl-rendered-fixtures" { } "touch $out";

          # Every wrong value in tests/nix/bad fails evaluation (the messages are checked by
          # tests/nix_eval.rs).
          bad-configs-fail =
            let
              evaluates =
                file:
                (builtins.tryEval (
                  builtins.deepSeq (import ./tests/nix/check-module.nix {
                    inherit lib;
                    configuration = file;
                  }) true
                )).success;
              stillEvaluating = lib.attrNames (lib.filterAttrs (_: evaluates) badConfigs);
            in
            assert lib.assertMsg (stillEvaluating == [ ])
              "these wrong configurations evaluate: ${toString stillEvaluating}";
            pkgs.runCommand "persistctl-bad-configs-fail" { } "touch $out";

          vm-first-boot = runTest ./nix/tests/first-boot.nix;
          vm-specialisation-switch = runTest ./nix/tests/specialisation-switch.nix;
          vm-dry-activate = runTest ./nix/tests/dry-activate.nix;
          vm-reboot = runTest ./nix/tests/reboot.nix;
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            rust-analyzer
            restic
            jq
            nixfmt-tree
          ];
          # tests/nix_eval.rs evaluates the module with this nixpkgs' lib.
          NIXPKGS_LIB = "${nixpkgs}";
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
