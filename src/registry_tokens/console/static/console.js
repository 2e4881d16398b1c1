// The console's only script: copy buttons, and focus on what an action produced.
// Every page works without it (the text to copy is selectable).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const focus = document.querySelector("[data-focus]");
  if (focus) focus.focus();
  for (const button of document.querySelectorAll("button[data-copy]")) {
    if (!navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      const status = button.parentElement.querySelector(".copied");
      try {
        await navigator.clipboard.writeText(source.textContent);
        status.textContent = "Copied";
      } catch (error) {
        status.textContent = "Copy failed: select the text and copy it";
      }
    });
  }
});
