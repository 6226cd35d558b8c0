# Point-in-time recovery of a server that is not enabled.
{
  modules.storage.datasets.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
  };
}
