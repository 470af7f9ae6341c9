/* "Blank the screen" (STANDARDS R5): Escape, or the button, hides a safeguarding record at
   once behind a neutral screen, for when someone walks in. Without script the button is
   a link to the home page, which leaves the record just as fast. */
(function () {
  "use strict";
  var record = document.getElementById("record");
  var screen = document.getElementById("blank-screen");
  var button = document.getElementById("blank-screen-button");
  var restore = document.getElementById("blank-screen-restore");
  if (!record || !screen) { return; }
  var title = document.title;

  function blank() {
    record.hidden = true;
    screen.hidden = false;
    document.body.classList.add("blanked");
    document.title = "esafety";
    if (restore) { restore.focus(); }
  }

  function show() {
    screen.hidden = true;
    record.hidden = false;
    document.body.classList.remove("blanked");
    document.title = title;
    if (button) { button.focus(); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && screen.hidden) { blank(); }
  });
  if (button) {
    button.addEventListener("click", function (event) { event.preventDefault(); blank(); });
  }
  if (restore) { restore.addEventListener("click", show); }
}());
