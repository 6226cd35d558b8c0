# A typo in a preseed option.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.preseed.sourcs = [ "restic" ];
}
