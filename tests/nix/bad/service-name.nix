# A service name is one dataset component.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services."media/sonarr" = { };
}
