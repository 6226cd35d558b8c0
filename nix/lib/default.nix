# The flake's `lib` output: helpers for host configurations. Needs nixpkgs' lib only.
{ lib }:
let
  types' = import ./checked-types.nix { inherit lib; };
in
{
  /**
    A NixOS module that restores a service's data before it starts (the seed's mkPreseedService),
    for services the presets do not cover. It declares (or extends) the dataset
    `modules.storage.datasets.services.<dataset>`; the storage module then makes
    `preseed@<dataset>.service` and makes `<unit>.service` require it.

    ```nix
    imports = [
      (persistctl.lib.mkPreseedService {
        serviceName = "paperless";
        restic = { repository = "/srv/restic/nas"; passwordFile = "/run/secrets/restic"; };
        timeout = 1800;
      })
    ];
    ```

    Arguments: `serviceName` (the systemd service), `dataset` (default: `serviceName`), `sources`,
    `restic`, `replica`, `timeout`, `sourceTimeout`, `allowEmptyBootstrap`, `verifyCommand`,
    `ignore` — the `preseed` options of the dataset; unset ones keep the module's defaults.
  */
  mkPreseedService =
    {
      serviceName,
      dataset ? serviceName,
      ...
    }@args:
    let
      preseedArgs = builtins.removeAttrs args [
        "serviceName"
        "dataset"
      ];
    in
    assert lib.assertMsg (types'.validComponent dataset)
      "mkPreseedService: dataset \"${dataset}\" is not one dataset name component";
    {
      modules.storage.datasets.services.${dataset} = {
        usedBy = [ serviceName ];
        preseed = preseedArgs // {
          enable = true;
        };
      };
    };

  /**
    The config object persistctl reads, from a module (or list of modules) setting
    modules.storage.*, without pkgs. See nix/render.nix.
  */
  renderConfig = configuration: import ../render.nix { inherit lib configuration; };

  types = {
    inherit (types')
      recordsize
      compression
      datasetName
      absolutePath
      octalMode
      ;
  };
}
