# A data directory that is not the dataset: the restore would go where PostgreSQL does not look.
{
  modules.storage.datasets.enable = true;
  services.postgresql = {
    enable = true;
    dataDir = "/srv/pgdata";
  };
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
  };
}
