using System.Diagnostics;

namespace Diffuse.Cli;

/// <summary>
/// A one-line progress bar with rate and ETA on stderr. On a terminal it redraws in place; otherwise (CI, logs) it
/// prints a plain line at every 10% so logs stay short.
/// </summary>
public sealed class ProgressBar : IDisposable
{
    private readonly string _label;
    private readonly long _total;
    private readonly string _unit;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _lastDrawTicks = -1;
    private int _lastDecile = -1;
    private bool _finished;

    /// <summary>Starts a bar for <paramref name="total"/> units of work.</summary>
    public ProgressBar(string label, long total, string unit = "it")
    {
        _label = label;
        _total = Math.Max(1, total);
        _unit = unit;
    }

    /// <summary>Reports <paramref name="done"/> units done, with optional extra text (e.g. the loss).</summary>
    public void Report(long done, string? detail = null)
    {
        double seconds = _clock.Elapsed.TotalSeconds;
        double rate = done / Math.Max(seconds, 1e-9);
        double fraction = Math.Clamp((double)done / _total, 0, 1);
        string eta = done > 0 && rate > 0 ? Format(TimeSpan.FromSeconds(Math.Min(1e7, (_total - done) / rate))) : "?";
        string speed = done > 0 && seconds > 0.2 ? FormatRate(rate) : "";
        string text = $"{_label} {Bar(fraction)} {fraction,4:P0} {done}/{_total} {speed} ETA {eta}" + (detail is null ? "" : "  " + detail);
        if (CliContext.Interactive)
        {
            long now = _clock.ElapsedTicks;
            if (done < _total && _lastDrawTicks >= 0 && now - _lastDrawTicks < Stopwatch.Frequency / 10) return;
            _lastDrawTicks = now;
            CliContext.Err.Write("\r" + text.PadRight(Math.Min(Console.IsErrorRedirected ? 0 : SafeWidth(), 160)));
            if (done >= _total) { CliContext.Err.WriteLine(); _finished = true; }
        }
        else
        {
            // Redirected output (a log file): a line at every tenth of the work, and at least one a minute for long runs.
            int decile = (int)(fraction * 10);
            long now = _clock.ElapsedTicks;
            bool minute = _lastDrawTicks >= 0 && now - _lastDrawTicks >= 60 * Stopwatch.Frequency;
            if (decile == _lastDecile && !minute && done < _total) return;
            if (decile == _lastDecile && done >= _total && _finished) return;
            _lastDecile = decile;
            _lastDrawTicks = now;
            CliContext.Err.WriteLine(text);
            if (done >= _total) _finished = true;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (CliContext.Interactive && !_finished && _lastDrawTicks >= 0) CliContext.Err.WriteLine();
    }

    private string FormatRate(double rate) => rate >= 1 ? $"{rate:F1} {_unit}/s" : $"{1 / Math.Max(rate, 1e-9):F1} s/{_unit}";

    private static string Bar(double fraction)
    {
        const int width = 24;
        int filled = (int)Math.Round(fraction * width);
        return "[" + new string('#', filled) + new string('-', width - filled) + "]";
    }

    private static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes}:{t.Seconds:D2}";

    private static int SafeWidth()
    {
        try { return Math.Max(40, Console.WindowWidth - 1); } catch (IOException) { return 100; }
    }
}
