using Diffuse.Imaging;
using SkiaSharp;
using Xunit.Abstractions;

namespace Diffuse.Tests.Imaging;

/// <summary>
/// Renders example figures to look at: into $DIFFUSE_IMAGING_EXAMPLES when set, otherwise into a temporary folder
/// that is deleted afterwards (so the test still checks that every example renders and decodes).
/// </summary>
public class ExampleFigures(ITestOutputHelper output)
{
    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static ScatterPanel Gaussian(string title, int n, double std, Random random)
    {
        var x = new float[n];
        var y = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (float)(std * Normal(random));
            y[i] = (float)(std * Normal(random));
        }
        return new ScatterPanel(title, x, y);
    }

    /// <summary>Two moons, slowly drowned in noise as the forward process would: x_t = sqrt(ab) x_0 + sqrt(1 - ab) e.</summary>
    private static ScatterPanel NoisyMoons(string title, int n, double alphaBar, Random random)
    {
        var x = new float[n];
        var y = new float[n];
        for (int i = 0; i < n; i++)
        {
            double a = Math.PI * random.NextDouble();
            (double mx, double my) = i % 2 == 0 ? (Math.Cos(a) - 0.5, Math.Sin(a) - 0.25) : (0.5 - Math.Cos(a), 0.25 - Math.Sin(a));
            mx = 1.5 * mx + 0.08 * Normal(random);
            my = 1.5 * my + 0.08 * Normal(random);
            x[i] = (float)(Math.Sqrt(alphaBar) * mx + Math.Sqrt(1 - alphaBar) * Normal(random));
            y[i] = (float)(Math.Sqrt(alphaBar) * my + Math.Sqrt(1 - alphaBar) * Normal(random));
        }
        return new ScatterPanel(title, x, y);
    }

    [Fact]
    public void RenderExamples()
    {
        string? requested = Environment.GetEnvironmentVariable("DIFFUSE_IMAGING_EXAMPLES");
        using var temp = new Pixels.TempFolder();
        string folder = string.IsNullOrEmpty(requested) ? temp.Path : requested;
        Directory.CreateDirectory(folder);
        var random = new Random(42);

        Figures.SaveScatterPanels(Path.Combine(folder, "gaussians.png"),
            [Gaussian("t = 0", 10_000, 0.3, random), Gaussian("t = 250", 10_000, 0.7, random), Gaussian("t = 1000", 10_000, 1.0, random)],
            new FigureOptions(Caption: "Forward process: the data spreads into a standard Gaussian as t grows."));

        Figures.SaveScatterPanels(Path.Combine(folder, "moons-grid.png"),
            [NoisyMoons("t = 0", 8000, 1, random), NoisyMoons("t = 100", 8000, 0.8, random), NoisyMoons("t = 300", 8000, 0.4, random),
             NoisyMoons("t = 600", 8000, 0.1, random), NoisyMoons("t = 1000", 8000, 0.001, random),
             new ScatterPanel("diverged (NaN)", [float.NaN, 1], [0, float.PositiveInfinity])],
            new FigureOptions(PanelSize: 200, AxisLimit: 3, Caption: "Two moons through the forward process; axis limit 3."), columns: 3);

        Figures.SaveScatterPanels(Path.Combine(folder, "ddpm-vs-ddim.png"),
            [NoisyMoons("DDPM, 1000 steps", 20_000, 0.97, random), NoisyMoons("DDIM, 50 steps (sigma = 0)", 30_000, 0.9, random)],
            new FigureOptions(PanelSize: 400, PointAlpha: 0.2f, Caption: "Samples from the same model: DDPM vs DDIM."));

        var steps = Enumerable.Range(0, 3000).Select(i => (double)i).ToArray();
        double[] train = steps.Select(s => (0.9 * Math.Exp(-s / 400) + 0.12) * Math.Exp(0.35 * Normal(random))).ToArray();
        double[] every100 = steps.Where(s => s % 100 == 0).ToArray();
        double[] validation = every100.Select(s => 0.95 * Math.Exp(-s / 450) + 0.14).ToArray();
        train[1234] = double.NaN;
        Figures.SaveLineChart(Path.Combine(folder, "loss-log.png"), "Training loss (epsilon MSE)",
            [new LineSeries("train", steps, train), new LineSeries("validation", every100, validation)], "step", "loss", logY: true, smoothWindow: 50);
        Figures.SaveLineChart(Path.Combine(folder, "loss-linear.png"), "Training loss",
            [new LineSeries("train", steps, train)], "step", "loss");
        double[] snr = Enumerable.Range(0, 1000).Select(t => { double ab = Math.Pow(Math.Cos((t / 1000.0 + 0.008) / 1.008 * Math.PI / 2), 2); return ab / (1 - ab + 1e-12); }).ToArray();
        Figures.SaveLineChart(Path.Combine(folder, "snr.png"), "Signal-to-noise ratio of the cosine schedule",
            [new LineSeries("alphaBar / (1 - alphaBar)", steps[..1000], snr)], "timestep t", "SNR", logY: true);

        const int count = 16, side = 28;
        var pixels = new float[count * side * side];
        for (int k = 0; k < count; k++)
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++)
                {
                    double r = Math.Sqrt(Math.Pow(x - 14, 2) + Math.Pow(y - 14, 2));
                    pixels[k * side * side + y * side + x] = (float)Math.Clamp(1 - Math.Abs(r - 4 - k / 2.0) / 2 + 0.15 * Normal(random), 0, 1);
                }
        Figures.SaveImageGrid(Path.Combine(folder, "grid.png"), pixels, count, 1, side, side, columns: 8, scale: 2, rowLabels: ["DDPM", "DDIM"]);

        var rgb = new float[6 * 3 * 16 * 16];
        for (int k = 0; k < 6; k++)
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 256; p++)
                    rgb[((k * 3 + c) * 256) + p] = c == k % 3 ? p / 255f : (k >= 3 ? 0.5f : 0f);
        Figures.SaveImageGrid(Path.Combine(folder, "rgb.png"), rgb, 6, 3, 16, 16, columns: 3, padding: 4, scale: 4);

        using (SKBitmap sheet = FontSheet()) File.WriteAllBytes(Path.Combine(folder, "font.png"), Figures.EncodePng(sheet));

        var frames = new List<SKBitmap>();
        try
        {
            for (int f = 0; f < 12; f++)
            {
                double ab = Math.Pow(f / 11.0, 2);
                frames.Add(Figures.RenderScatterPanels([NoisyMoons($"reverse step {11 - f}", 3000, Math.Max(ab, 1e-3), new Random(f))],
                    new FigureOptions(PanelSize: 200, AxisLimit: 3)));
            }
            string gif = Path.Combine(folder, "reverse.gif");
            GifWriter.Save(gif, frames, delayCentiseconds: 25);
            // The first and last frames as SkiaSharp decodes them, to look at the palette's effect.
            using SKCodec codec = SKCodec.Create(gif);
            Assert.Equal(frames.Count, codec.FrameCount);
            foreach (int index in new[] { 0, frames.Count - 1 })
            {
                using var decoded = new SKBitmap(new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
                Assert.Equal(SKCodecResult.Success, codec.GetPixels(decoded.Info, decoded.GetPixels(), new SKCodecOptions(index)));
                File.WriteAllBytes(Path.Combine(folder, $"reverse-frame-{index:00}.png"), Figures.EncodePng(decoded));
            }
        }
        finally
        {
            frames.ForEach(f => f.Dispose());
        }

        foreach (string file in Directory.GetFiles(folder))
        {
            using SKBitmap decoded = SKBitmap.Decode(file);
            Assert.NotNull(decoded);
            output.WriteLine($"{file}: {decoded.Width}x{decoded.Height}");
        }
    }

    private static SKBitmap FontSheet()
    {
        string[] lines =
        [
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "abcdefghijklmnopqrstuvwxyz",
            "0123456789 .,:;=-+()/% !?'\"",
            "#$&*<>@[\\]^_`{|}~ σ α β ε μ θ × ·",
            "t = 250, sigma = 0.37, loss: 1.2e-3 (-4.5%)",
            "The quick brown fox jumps over the lazy dog.",
        ];
        int height = 8;
        foreach (int s in new[] { 1, 2, 3 }) height += lines.Length * BitmapFont.LineAdvance * s + 10;
        SKBitmap bitmap = Pixels.White(lines.Max(l => BitmapFont.MeasureWidth(l, 3)) + 16, height);
        using var canvas = new SKCanvas(bitmap);
        int top = 8;
        foreach (int s in new[] { 1, 2, 3 })
        {
            BitmapFont.DrawText(canvas, string.Join('\n', lines), 8, top, new SKColor(30, 30, 30), s);
            top += lines.Length * BitmapFont.LineAdvance * s + 10;
        }
        return bitmap;
    }
}
