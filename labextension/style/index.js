import './base.css';
import './jobpage.css';
import './compare.css';
