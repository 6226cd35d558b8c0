# A typo in a dataset option.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.recordsze = "16K";
}
