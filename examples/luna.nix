# luna: a standard host on the boot pool. Home Assistant's configuration lives in
# rpool/safe/persist/home-assistant (16K records for its frequent small writes).
#
# A host-config module: import it next to persistctl's nixosModules.default. It is also what
# nix/render.nix renders into tests/fixtures/rendered/luna.json.
{
  modules.storage.datasets = {
    enable = true;
    parentDataset = "rpool/safe/persist";
    parentMount = "/persist";
  };

  services.home-assistant.enable = true; # rpool/safe/persist/home-assistant
}
