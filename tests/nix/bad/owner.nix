# Not a user name.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.owner = "Bad User";
}
