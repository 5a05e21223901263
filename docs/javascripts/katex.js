// Render the formulas pymdownx.arithmatex (generic mode) leaves in each page, with the vendored KaTeX
// (docs/assets/katex). document$ is Material's page-load observable: it also fires on instant navigation.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "$", right: "$", display: false },
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
  });
});
