# The notifications settings live in the file modules.storage.datasets writes.
{
  modules.notifications.enable = true;
}
