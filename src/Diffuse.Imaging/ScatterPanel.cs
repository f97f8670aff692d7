namespace Diffuse.Imaging;

/// <summary>One scatter plot of a figure: a title and the coordinates of its points.</summary>
/// <param name="Title">Shown above the panel, e.g. "t = 250".</param>
/// <param name="X">Horizontal coordinates; the same length as <paramref name="Y"/>. Non-finite points are skipped.</param>
/// <param name="Y">Vertical coordinates; the same length as <paramref name="X"/>.</param>
public sealed record ScatterPanel(string Title, float[] X, float[] Y);
