# "replica" in sources needs replica.dataset.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.usedBy = [ "app" ];
  modules.storage.datasets.services.app.preseed = {
    enable = true;
    sources = [ "replica" ];
  };
}
