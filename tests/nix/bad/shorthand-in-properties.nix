# recordsize has its own option.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.properties.recordsize = "16K";
}
