# The barman source restores from the archive modules.database.postgresql.pitr configures.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.usedBy = [ "app" ];
  modules.storage.datasets.services.app.preseed = {
    enable = true;
    sources = [ "barman" ];
  };
}
