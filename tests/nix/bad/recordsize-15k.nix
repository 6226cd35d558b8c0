# 15K is not a power of two.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.recordsize = "15K";
}
