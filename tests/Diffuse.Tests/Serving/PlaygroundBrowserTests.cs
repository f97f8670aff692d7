using System.Diagnostics;
using System.Text.Json;
using Diffuse.Cli.Serving;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using SkiaSharp;

namespace Diffuse.Tests.Serving;

/// <summary>A test that needs Debian's chromium and chromedriver; skipped, saying why, only when they are missing.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public const string Chromium = "/usr/bin/chromium", Driver = "/usr/bin/chromedriver";

    public BrowserFactAttribute()
    {
        if (!File.Exists(Chromium) || !File.Exists(Driver))
            Skip = $"{Chromium} or {Driver} is missing and could not be installed: run ./test as root (its set-up runs 'apt-get install -y chromium chromium-driver'), or install those packages.";
    }
}

/// <summary>
/// The playground driven in headless Chromium as a person would use it: move the t slider, sample, cancel, make a
/// mistake; against a server with the shipped Fashion-MNIST model and a tiny table model.
/// </summary>
[Collection("Serving")]
public sealed class PlaygroundBrowserTests(ServerFixture fixture) : IAsyncLifetime
{
    private ServerInstance _server = null!;
    private ChromeDriver _browser = null!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(BrowserFactAttribute.Chromium) || !File.Exists(BrowserFactAttribute.Driver)) return;
        _server = await ServerInstance.StartAsync(new ServeOptions(Port: 0), "fashion-mnist", fixture.TableModel);
        var options = new ChromeOptions { BinaryLocation = BrowserFactAttribute.Chromium };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1900", "--renderer-process-limit=1");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(BrowserFactAttribute.Driver), Path.GetFileName(BrowserFactAttribute.Driver));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        _browser = new ChromeDriver(service, options, TimeSpan.FromMinutes(2));
        _browser.Navigate().GoToUrl(_server.Address);
        Wait(() => Element("example").FindElements(By.TagName("option")).Count > 0, "the forward process's examples to load");
    }

    public async Task DisposeAsync()
    {
        _browser?.Quit();
        _browser?.Dispose();
        if (_server is not null) await _server.DisposeAsync();
    }

    private IWebElement Element(string id) => _browser.FindElement(By.Id(id));

    private void Wait(Func<bool> condition, string what, int seconds = 120)
    {
        var wait = new WebDriverWait(_browser, TimeSpan.FromSeconds(seconds)) { Message = $"waited {seconds} s for {what}" };
        wait.IgnoreExceptionTypes(typeof(StaleElementReferenceException));
        wait.Until(_ => condition());
    }

    private string Script(string script) => Convert.ToString(((IJavaScriptExecutor)_browser).ExecuteScript(script), System.Globalization.CultureInfo.InvariantCulture) ?? "";

    private void Choose(string id, string value) => Element(id).FindElement(By.CssSelector($"option[value='{value}']")).Click();

    private void Type(string id, string value)
    {
        var input = Element(id);
        input.Clear();
        input.SendKeys(value);
    }

    [BrowserFact]
    public void MovingTheTSliderDissolvesThePictureAndNothingComesFromElsewhere()
    {
        string clean = Script("return document.getElementById('forward-canvas').toDataURL()");
        Assert.Equal("1.0000", Element("alpha-bar").Text);
        // Fashion-MNIST's test images when this machine has the data set cached, else the model's own samples.
        string note = Element("example-note").Text;
        Assert.True(note.Contains("test images of fashion-mnist", StringComparison.Ordinal) || note.Contains("own samples", StringComparison.Ordinal), note);
        var slider = Element("t");
        slider.Click();   // the middle of the slider
        Wait(() => Element("alpha-bar").Text != "1.0000", "ᾱ to change");
        string middle = Script("return document.getElementById('forward-canvas').toDataURL()");
        Assert.NotEqual(clean, middle);
        slider.SendKeys(Keys.End);
        Wait(() => Element("t-value").Text == "t = 1000 of 1000", "t to reach T");
        Assert.NotEqual(middle, Script("return document.getElementById('forward-canvas').toDataURL()"));
        Assert.True(double.Parse(Element("alpha-bar").Text, System.Globalization.CultureInfo.InvariantCulture) < 1e-3);
        // Every resource the page loaded came from the server itself: no CDN, no external font or script.
        string origin = _server.Address.GetLeftPart(UriPartial.Authority);
        foreach (var url in Script("return performance.getEntriesByType('resource').map(e => e.name).join('\\n')").Split('\n', StringSplitOptions.RemoveEmptyEntries))
            Assert.StartsWith(origin, url);
    }

    [BrowserFact]
    public async Task SamplingShowsProgressAndTheGridTheApiReturnsForTheSameRequest()
    {
        Choose("class", "7");
        Type("count", "4");
        Type("steps", "6");
        Type("seed", "11");
        Element("run").Click();
        Wait(() => Element("status").Text.StartsWith("done", StringComparison.Ordinal), "the run to finish");
        Assert.Equal("1", Element("progress").GetAttribute("value"));
        string src = Element("result").GetAttribute("src")!;
        Assert.StartsWith("data:image/png;base64,", src);
        var shown = Convert.FromBase64String(src["data:image/png;base64,".Length..]);
        using (var bitmap = SKBitmap.Decode(shown)) Assert.NotNull(bitmap);
        var api = await _server.SampleBytes("fashion-mnist", new { count = 4, @class = 7, guidance = 1.5, sampler = "dpm++2m", steps = 6, seed = 11, format = "grid" });
        Assert.Equal(api, shown);
        // The request is shown as a curl line and the equivalent command.
        Assert.Contains("\"count\":4,\"class\":7", Element("curl").Text);
        Assert.Contains("diffuse sample --model fashion-mnist --count 4 --class 7 --guidance 1.5 --sampler dpm++2m --steps 6 --seed 11", Element("command").Text);
        // The reverse process: each step shows z_t and x̂0; stepping back changes the pictures.
        Assert.True(Element("step").Enabled);
        string last = Element("z-image").GetAttribute("src")!;
        Assert.StartsWith("data:image/png;base64,", last);
        Element("step").SendKeys(Keys.Home);
        Wait(() => Element("step-value").Text == "step 1 of 6", "the first step");
        Assert.NotEqual(last, Element("z-image").GetAttribute("src"));
        Assert.StartsWith("data:image/png;base64,", Element("x0-image").GetAttribute("src"));
        if (Environment.GetEnvironmentVariable("DIFFUSE_PLAYGROUND_SCREENSHOT") is { Length: > 0 } path)
        {
            // The picture in the README: t in the middle of the forward process, the reverse process two thirds through.
            Element("t").Click();
            Element("step").SendKeys(Keys.End + Keys.ArrowLeft + Keys.ArrowLeft);
            Wait(() => Element("step-value").Text == "step 4 of 6", "step 4");
            _browser.GetScreenshot().SaveAsFile(path);
        }
    }

    [BrowserFact]
    public void CancellingARunStopsItOnTheServer()
    {
        Type("count", "64");
        Type("steps", "50");
        Element("run").Click();
        Wait(() => Element("status").Text.StartsWith("step ", StringComparison.Ordinal), "the run to start");
        var scheduler = _server.Model("fashion-mnist").Scheduler;
        Assert.True(scheduler.Busy);
        Element("cancel").Click();
        Wait(() => Element("status").Text == "cancelled", "the page to say cancelled");
        var clock = Stopwatch.StartNew();
        Wait(() => !scheduler.Busy, "the server to stop the run", 10);
        Assert.True(clock.ElapsedMilliseconds < 10_000);
        Assert.True(Element("run").Enabled);
        Assert.False(Element("error").Displayed);
    }

    [BrowserFact]
    public void ABadInputShowsTheServersMessage()
    {
        Type("steps", "-5");
        Element("run").Click();
        Wait(() => Element("error").Displayed, "an error message");
        Assert.Contains("'steps'", Element("error").Text);
        Type("steps", "5");
        Type("count", "100000");
        Element("run").Click();
        Wait(() => Element("error").Text.Contains("limit of 256", StringComparison.Ordinal), "the count limit's message");
    }

    [BrowserFact]
    public void ATableModelDissolvesAndCondensesAPointCloud()
    {
        Choose("model", "table");
        Wait(() => Element("example").Text.Contains("point cloud", StringComparison.Ordinal), "the point cloud");
        string clean = Script("return document.getElementById('forward-canvas').toDataURL()");
        Element("t").SendKeys(Keys.End);
        Wait(() => Script("return document.getElementById('forward-canvas').toDataURL()") != clean, "the cloud to dissolve");
        Type("count", "500");
        Element("run").Click();
        Wait(() => Element("status").Text.StartsWith("done", StringComparison.Ordinal), "the run to finish");
        Assert.True(Element("result-scatter").Displayed);
        Assert.True(Element("z-scatter").Displayed);
        Assert.Contains("diffuse sample --model table --count 500", Element("command").Text);
    }
}
