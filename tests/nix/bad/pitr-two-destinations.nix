# s3Bucket is a shorthand of destination: one of them, not both.
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
    destination = "s3://other-bucket/db";
  };
}
