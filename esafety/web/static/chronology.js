/* The chronology's Print button (the browser's own Print gives the same clean record;
   without script the button stays hidden). */
(function () {
  "use strict";
  var button = document.getElementById("print-button");
  if (!button) { return; }
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
}());
