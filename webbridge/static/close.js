// The bridge's pages that end a login: the "Close" button closes the window, and the
// page closes itself after a login or a refusal. A browser lets a script close only
// a window that a script opened: otherwise the page says to close it by hand.
(() => {
  const button = document.getElementById("close");
  const hint = document.getElementById("close-hint");
  const closeWindow = () => {
    window.close();
    // Still here a moment later: this window was not opened by a script.
    setTimeout(() => {
      if (hint) hint.hidden = false;
    }, 300);
  };
  button?.addEventListener("click", closeWindow);
  if (button?.hasAttribute("data-autoclose")) setTimeout(closeWindow, 1500);
})();
