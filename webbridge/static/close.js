// The bridge's page closes itself once the login is over (a browser lets a script
// close only a window that a script opened: otherwise this does nothing).
setTimeout(() => window.close(), 1500);
