namespace Diffuse.Imaging;

/// <summary>How a figure of scatter panels is drawn.</summary>
/// <param name="PanelSize">Side of each square plotting area, in pixels (64 to 2048). Text grows with it.</param>
/// <param name="AxisLimit">
/// When set, every panel shows the square [-limit, limit]² and counts the points that fall outside; when null, the
/// range is fitted so that every point is visible (symmetric about 0, equal on both axes).
/// </param>
/// <param name="SharedAxes">
/// When the range is fitted: true gives every panel the same range (fitted to all of them), so panels can be compared;
/// false fits each panel to its own points.
/// </param>
/// <param name="Caption">An optional line (wrapped when long) under the whole figure.</param>
/// <param name="PointAlpha">Opacity of one point in (0, 1]: low values show density where many points overlap.</param>
/// <param name="PointRadius">Radius of one point in pixels (0.3 to 20).</param>
public sealed record FigureOptions(
    int PanelSize = 320,
    float? AxisLimit = null,
    bool SharedAxes = true,
    string? Caption = null,
    float PointAlpha = 0.35f,
    float PointRadius = 1.2f);
