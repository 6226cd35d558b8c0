# One WAL fetch may take at most a day (persistctl pg-wal-restore --timeout).
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
    walTimeout = 7 * 86400;
  };
}
