namespace Diffuse.Imaging;

/// <summary>One curve of a line chart, e.g. the training loss against the step.</summary>
/// <param name="Name">Shown in the legend.</param>
/// <param name="X">Horizontal values; the same length as <paramref name="Y"/>. Non-finite points break the line.</param>
/// <param name="Y">Vertical values; the same length as <paramref name="X"/>.</param>
public sealed record LineSeries(string Name, double[] X, double[] Y);
