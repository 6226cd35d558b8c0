# The archive's place is required: s3Bucket or destination.
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr.enable = true;
}
