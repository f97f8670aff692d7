using SkiaSharp;

namespace Diffuse.Imaging.Drawing;

/// <summary>Colours shared by every figure.</summary>
internal static class Style
{
    public static readonly SKColor Background = SKColors.White;
    public static readonly SKColor Grid = new(232, 232, 232);
    public static readonly SKColor MinorGrid = new(244, 244, 244);
    public static readonly SKColor ZeroLine = new(200, 200, 200);
    public static readonly SKColor Frame = new(110, 110, 110);
    public static readonly SKColor Text = new(30, 30, 30);
    public static readonly SKColor TickText = new(70, 70, 70);
    public static readonly SKColor Subtle = new(120, 120, 120);
    public static readonly SKColor Note = new(178, 40, 40);
    public static readonly SKColor Point = new(31, 100, 170);

    /// <summary>Distinct line colours, used in order and then repeated.</summary>
    public static readonly SKColor[] Series =
    [
        new(31, 119, 180), new(214, 39, 40), new(44, 160, 44), new(255, 127, 14), new(148, 103, 189),
        new(140, 86, 75), new(227, 119, 194), new(127, 127, 127), new(188, 189, 34), new(23, 190, 207),
    ];
}
