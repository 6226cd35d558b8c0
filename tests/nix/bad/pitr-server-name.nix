# A server name is one folder name of letters, digits, ".", "_" and "-".
{
  modules.storage.datasets.enable = true;
  services.postgresql.enable = true;
  modules.database.postgresql.pitr = {
    enable = true;
    s3Bucket = "homelab-pitr/db";
    serverName = "pg/main";
  };
}
