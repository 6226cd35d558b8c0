# s3Bucket is the bucket (and prefix) without the scheme.
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "s3://homelab-pitr/db";
  };
}
