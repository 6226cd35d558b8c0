# wal_level = minimal writes no WAL an archive could replay.
{
  modules.storage.datasets.enable = true;
  services.postgresql = {
    enable = true;
    settings.wal_level = "minimal";
  };
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
  };
}
