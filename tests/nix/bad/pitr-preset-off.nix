# Without the postgresql preset there is no postgres-data dataset to restore into.
{
  modules.storage.datasets = {
    enable = true;
    presets.postgresql.enable = false;
  };
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
  };
}
