# forge: two NVMe drives in the pool `tank`. The media services keep their state in their own
# datasets under tank/persist (created and tuned by persistctl); sonarr's data is restored
# automatically when it is missing.
#
# A host-config module: import it next to persistctl's nixosModules.default. It is also what
# nix/render.nix renders into tests/fixtures/rendered/forge.json.
{
  modules.storage.datasets = {
    enable = true;
    parentDataset = "tank/persist";
    parentMount = "/persist";

    # Beyond the preset (16K, lz4, auto-snapshot): a nightly restic backup, and a restore before
    # start from the local snapshot, the syncoid replica, then restic (the backups taken before
    # the move to per-service datasets hold the data under /persist/var/lib/sonarr).
    services.sonarr = {
      backup.restic = {
        enable = true;
        repository = "/srv/restic/nas-primary";
        passwordFile = "/run/secrets/restic-password";
        exclude = [
          "**/.cache"
          "**/*.tmp"
        ];
        tags = [
          "sonarr"
          "media"
        ];
      };
      preseed = {
        enable = true;
        replica.dataset = "backup/tank-replica/sonarr";
        restic.path = "/persist/var/lib/sonarr";
        timeout = 1800;
      };
    };
  };

  services.sonarr.enable = true; # tank/persist/sonarr
  services.radarr.enable = true; # tank/persist/radarr
  services.plex.enable = true; # tank/persist/plex
}
