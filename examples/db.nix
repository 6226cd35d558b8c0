# db: a database host on the pool `tank`. PostgreSQL keeps its data directory on
# tank/persist/postgres-data and its WAL on tank/persist/postgres-wal (the preset's properties:
# 8K records and logbias=latency for the data, 128K and no compression for the WAL). Every WAL
# segment is archived with barman-cloud to a bucket on the NAS's S3-compatible store, a base backup
# is taken every night and 30 days are kept; an empty data directory is restored from the archive
# (to its end) before PostgreSQL starts, instead of being initdb'd.
#
# A host-config module: import it next to persistctl's nixosModules.default. It is also what
# nix/render.nix renders into tests/fixtures/rendered/db.json.
{
  modules.storage.datasets = {
    enable = true;
    parentDataset = "tank/persist";
    parentMount = "/persist";
  };

  services.postgresql.enable = true; # tank/persist/postgres-data and postgres-wal

  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
    endpointUrl = "http://nas.lan:9000";
    # AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=..., outside the Nix store (sops-nix, agenix).
    environmentFile = "/run/secrets/pitr.env";
    compression = "gzip";
    retention = "RECOVERY WINDOW OF 30 DAYS";
  };
}
