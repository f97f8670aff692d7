using Diffuse.Imaging;
using Diffuse.Imaging.Drawing;
using SkiaSharp;

namespace Diffuse.Tests.Imaging;

public class FiguresTests
{
    private static ScatterPanel Gaussian(string title, int n, double std, int seed, double cx = 0, double cy = 0)
    {
        var random = new Random(seed);
        var x = new float[n];
        var y = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (float)(cx + std * Normal(random));
            y[i] = (float)(cy + std * Normal(random));
        }
        return new ScatterPanel(title, x, y);
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    [Fact]
    public void ScatterPanelsSaveADecodablePngOfTheRenderedSize()
    {
        using var folder = new Pixels.TempFolder();
        ScatterPanel[] panels = [Gaussian("t = 0", 500, 0.5, 1), Gaussian("t = 250", 500, 1, 2), Gaussian("t = 1000", 500, 2, 3)];
        var options = new FigureOptions(PanelSize: 200, Caption: "forward process");
        string path = folder.File("panels.png");
        Figures.SaveScatterPanels(path, panels, options);

        using SKBitmap rendered = Figures.RenderScatterPanels(panels, options);
        using SKBitmap decoded = SKBitmap.Decode(path);
        Assert.NotNull(decoded);
        Assert.Equal(rendered.Width, decoded.Width);
        Assert.Equal(rendered.Height, decoded.Height);
        Assert.True(decoded.Width > 3 * 200 && decoded.Height > 200);
        Assert.Equal(["panels.png"], folder.Names());
    }

    [Fact]
    public void ColumnsWrapPanelsIntoRows()
    {
        ScatterPanel[] panels = [Gaussian("a", 50, 1, 1), Gaussian("b", 50, 1, 2), Gaussian("c", 50, 1, 3)];
        var options = new FigureOptions(PanelSize: 100);
        using SKBitmap row = Figures.RenderScatterPanels(panels, options);
        using SKBitmap grid = Figures.RenderScatterPanels(panels, options, columns: 2);
        ScatterFigure.Render(panels, options, 2, out SKRectI[] areas).Dispose();
        Assert.True(grid.Width < row.Width);
        Assert.True(grid.Height > row.Height);
        Assert.Equal(areas[0].Left, areas[2].Left);
        Assert.True(areas[2].Top > areas[0].Bottom);
    }

    [Fact]
    public void ACentralClusterDarkensThePanelCentre()
    {
        var options = new FigureOptions(PanelSize: 160, AxisLimit: 1);
        using SKBitmap centred = ScatterFigure.Render([Gaussian("centre", 3000, 0.03, 5)], options, 0, out SKRectI[] areas);
        using SKBitmap aside = ScatterFigure.Render([Gaussian("corner", 3000, 0.03, 5, 0.7, 0.7)], options, 0, out _);
        SKRectI area = areas[0];
        var centre = SKRectI.Create(area.MidX - 2, area.MidY - 2, 5, 5);
        Assert.Equal(25, Pixels.CountDark(centred, centre));
        Assert.Equal(0, Pixels.CountDark(aside, centre));
        // The corner cluster lands up and to the right of the centre (y grows upwards).
        SKPointI corner = new(area.Left + (int)(0.85 * area.Width), area.Top + (int)(0.15 * area.Height));
        Assert.True(Pixels.IsDark(aside.GetPixel(corner.X, corner.Y)));
    }

    [Fact]
    public void NonFiniteAndEmptyPanelsDrawWithANote()
    {
        ScatterPanel bad = new("all NaN", [float.NaN, float.PositiveInfinity], [0, float.NaN]);
        ScatterPanel empty = new("empty", [], []);
        ScatterPanel mixed = new("mixed", [0, float.NaN, 0.5f], [0, 1, float.NegativeInfinity]);
        using SKBitmap bitmap = ScatterFigure.Render([bad, empty, mixed], new FigureOptions(PanelSize: 120), 0, out SKRectI[] areas);
        foreach (SKRectI area in areas)
        {
            Assert.True(CountReddish(bitmap, area) > 10, "the panel carries a note in red");
        }
    }

    [Fact]
    public void LargePanelsAreThinnedDeterministically()
    {
        ScatterPanel big = Gaussian("50k", 50_000, 1, 9);
        using SKBitmap a = Figures.RenderScatterPanels([big], new FigureOptions(PanelSize: 100));
        using SKBitmap b = Figures.RenderScatterPanels([big], new FigureOptions(PanelSize: 100));
        Assert.Equal(Figures.EncodePng(a), Figures.EncodePng(b));
    }

    [Fact]
    public void InvalidScatterInputIsRejected()
    {
        Assert.Throws<ArgumentException>(() => Figures.RenderScatterPanels([new ScatterPanel("x", [1, 2], [1])]));
        Assert.Throws<ArgumentException>(() => Figures.RenderScatterPanels([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Figures.RenderScatterPanels([Gaussian("a", 5, 1, 1)], new FigureOptions(AxisLimit: -1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Figures.RenderScatterPanels([Gaussian("a", 5, 1, 1)], new FigureOptions(PointAlpha: 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Figures.RenderScatterPanels([Gaussian("a", 5, 1, 1)], columns: -1));
    }

    [Fact]
    public void FittedLimitsAreNiceAndCoverTheData()
    {
        Assert.Equal(3.5, ScatterFigure.FitLimit(3.2), 9);
        Assert.Equal(1.2, ScatterFigure.FitLimit(1.0), 9);
        Assert.Equal(70, ScatterFigure.FitLimit(60), 9);
        Assert.Equal(1, ScatterFigure.FitLimit(0), 9);
        foreach (double m in new[] { 0.013, 0.9, 2.49, 7.7, 123.4, 9999 })
        {
            Assert.True(ScatterFigure.FitLimit(m) >= m * 1.05 - 1e-12);
            Assert.True(ScatterFigure.FitLimit(m) <= m * 1.4);
        }
    }

    [Fact]
    public void LineChartSavesADecodablePng()
    {
        using var folder = new Pixels.TempFolder();
        var x = Enumerable.Range(0, 300).Select(i => (double)i).ToArray();
        var y = x.Select(v => 2 * Math.Exp(-v / 80) + 0.05).ToArray();
        string path = folder.File("loss.png");
        Figures.SaveLineChart(path, "loss", [new LineSeries("train", x, y)], "step", "loss", logY: true, smoothWindow: 10);
        using SKBitmap decoded = SKBitmap.Decode(path);
        Assert.Equal(Figures.LineChartWidth, decoded.Width);
        Assert.Equal(Figures.LineChartHeight, decoded.Height);
        Assert.Equal(["loss.png"], folder.Names());
    }

    [Fact]
    public void LineChartDrawsEachSeriesInItsColour()
    {
        double[] x = [0, 1, 2, 3];
        using SKBitmap bitmap = LineChart.Render("two", [new LineSeries("a", x, [1, 1, 1, 1]), new LineSeries("b", x, [3, 3, 3, 3])],
            "x", "y", logY: false, smoothWindow: 0, out SKRectI area);
        int blue = 0, red = 0;
        for (int y = area.Top; y < area.Bottom; y++)
        {
            SKColor c = bitmap.GetPixel(area.MidX, y);
            if (c.Blue > 150 && c.Red < 80) blue++;
            if (c.Red > 180 && c.Green < 80) red++;
        }
        Assert.True(blue >= 1 && red >= 1, $"blue {blue}, red {red}");
    }

    [Fact]
    public void LineChartSurvivesNonFiniteAndNonPositiveValues()
    {
        double[] x = [0, 1, 2, 3, 4, double.NaN];
        double[] y = [1, double.NaN, 0, -2, double.PositiveInfinity, 5];
        using SKBitmap log = Figures.RenderLineChart("odd", [new LineSeries("s", x, y)], "x", "y", logY: true, smoothWindow: 3);
        using SKBitmap allBad = Figures.RenderLineChart("none", [new LineSeries("s", [double.NaN], [double.NaN])], "x", "y");
        using SKBitmap noSeries = Figures.RenderLineChart("empty", [], "x", "y", logY: true);
        using SKBitmap constant = Figures.RenderLineChart("flat", [new LineSeries("s", [5, 5], [2, 2])], "x", "y");
        using SKBitmap extreme = Figures.RenderLineChart("huge", [new LineSeries("s", [0, 1, 2], [1e308, -1e308, 1e-300])], "x", "y");
        using SKBitmap extremeLog = Figures.RenderLineChart("huge", [new LineSeries("s", [-1e308, 1e308], [1e-300, 1e300])], "x", "y", logY: true);
        using SKBitmap wide = Figures.RenderScatterPanels([new ScatterPanel("max", [float.MaxValue, -float.MaxValue, 1e-30f], [0, 1, -float.MaxValue])]);
        Assert.Equal(Figures.LineChartWidth, allBad.Width);
        Assert.Throws<ArgumentException>(() => Figures.RenderLineChart("bad", [new LineSeries("s", [1, 2], [1])], "x", "y"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Figures.RenderLineChart("bad", [], "x", "y", smoothWindow: -1));
    }

    [Fact]
    public void MovingAverageIsTrailingAndSkipsGaps()
    {
        double[] ys = [1, 3, double.NaN, 5, 7];
        bool[] ok = [true, true, false, true, true];
        double[] avg = LineChart.MovingAverage(ys, ok, 2);
        Assert.Equal(1, avg[0]);
        Assert.Equal(2, avg[1]);
        Assert.True(double.IsNaN(avg[2]));
        Assert.Equal(4, avg[3]);
        Assert.Equal(6, avg[4]);
    }

    [Fact]
    public void ImageGridPlacesEveryImageAtItsCell()
    {
        using var folder = new Pixels.TempFolder();
        const int count = 5, height = 4, width = 3;
        var pixels = new float[count * height * width];
        for (int k = 0; k < count; k++) Array.Fill(pixels, k / 4f, k * height * width, height * width);
        string path = folder.File("grid.png");
        Figures.SaveImageGrid(path, pixels, count, 1, height, width, columns: 3, padding: 2, scale: 2);

        using SKBitmap decoded = SKBitmap.Decode(path);
        Assert.Equal(3 * width * 2 + 4 * 2, decoded.Width);
        Assert.Equal(2 * height * 2 + 3 * 2, decoded.Height);
        ImageGrid.Render(pixels, count, 1, height, width, 3, 2, 2, null, out SKRectI[] cells).Dispose();
        for (int k = 0; k < count; k++)
        {
            SKColor c = decoded.GetPixel(cells[k].MidX, cells[k].MidY);
            byte expected = (byte)Math.Round(k / 4f * 255);
            Assert.Equal(expected, c.Red);
            Assert.Equal(expected, c.Blue);
        }
    }

    [Fact]
    public void ImageGridReadsChannelsAsPlanesAndClampsOutOfRangeValues()
    {
        // One 1x2 RGB image: pixel 0 red, pixel 1 over-range green with NaN blue.
        float[] pixels = [1, 0, /* green */ 0, 7, /* blue */ 0, float.NaN];
        using SKBitmap bitmap = ImageGrid.Render(pixels, 1, 3, 1, 2, 1, 0, 1, null, out _);
        Assert.Equal(new SKColor(255, 0, 0), bitmap.GetPixel(0, 0));
        Assert.Equal(new SKColor(0, 255, 0), bitmap.GetPixel(1, 0));
    }

    [Fact]
    public void ImageGridRowLabelsWidenTheGridAndDrawText()
    {
        var pixels = new float[4 * 16 * 16];
        using SKBitmap plain = Figures.RenderImageGrid(pixels, 4, 1, 16, 16, 2, scale: 2);
        using SKBitmap labelled = Figures.RenderImageGrid(pixels, 4, 1, 16, 16, 2, scale: 2, rowLabels: ["DDPM", "DDIM"]);
        Assert.True(labelled.Width > plain.Width);
        int labelWidth = labelled.Width - plain.Width;
        Assert.True(Pixels.CountDark(labelled, new SKRectI(0, 0, labelWidth, labelled.Height)) > 20);
        Assert.Throws<ArgumentException>(() => Figures.RenderImageGrid(pixels, 4, 1, 16, 16, 2, rowLabels: ["only one"]));
        Assert.Throws<ArgumentException>(() => Figures.RenderImageGrid(pixels, 5, 1, 16, 16, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Figures.RenderImageGrid(pixels, 2, 2, 16, 16, 2));
    }

    [Fact]
    public void AFailedSaveKeepsTheExistingFileAndLeavesNoTemporaryFile()
    {
        using var folder = new Pixels.TempFolder();
        string path = folder.File("figure.png");
        File.WriteAllText(path, "previous figure");

        Assert.Throws<ArgumentException>(() => Figures.SaveScatterPanels(path, [new ScatterPanel("x", [1, 2, 3], [1, 2])]));
        Assert.Throws<ArgumentException>(() => Figures.SaveImageGrid(path, new float[3], 1, 1, 2, 2, 1));
        Assert.Throws<ArgumentException>(() => GifWriter.Save(path, [], 10));
        Assert.Equal("previous figure", File.ReadAllText(path));
        Assert.Equal(["figure.png"], folder.Names());
    }

    [Fact]
    public void AWriteThatThrowsHalfWayKeepsTheExistingFile()
    {
        using var folder = new Pixels.TempFolder();
        string path = folder.File("data.bin");
        File.WriteAllText(path, "old");
        Assert.Throws<IOException>(() => AtomicWrite.Stream(path, s =>
        {
            s.Write(new byte[1000]);
            throw new IOException("disk full");
        }));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal(["data.bin"], folder.Names());

        AtomicWrite.Bytes(path, [1, 2, 3]);
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        Assert.Equal(["data.bin"], folder.Names());
    }

    [Fact]
    public void SavingCreatesTheFolder()
    {
        using var folder = new Pixels.TempFolder();
        string path = Path.Combine(folder.Path, "a", "b", "grid.png");
        Figures.SaveImageGrid(path, new float[4], 1, 1, 2, 2, 1);
        Assert.NotNull(SKBitmap.Decode(path));
    }

    private static int CountReddish(SKBitmap bitmap, SKRectI area)
    {
        int n = 0;
        for (int y = area.Top; y < area.Bottom; y++)
            for (int x = area.Left; x < area.Right; x++)
            {
                SKColor c = bitmap.GetPixel(x, y);
                if (c.Red > 140 && c.Green < 90 && c.Blue < 90) n++;
            }
        return n;
    }
}
