# Two datasets cannot mount at one place.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.a.mountpoint = "/persist/b";
  modules.storage.datasets.services.b = { };
}
