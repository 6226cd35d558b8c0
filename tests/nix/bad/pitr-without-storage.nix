# PGDATA is restored into the postgres-data dataset, which the storage module makes.
{
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
  };
}
